"""The price book: RunComfy's quote, the last good one in the database, the setting; and the credit state."""

from __future__ import annotations

import asyncio
import logging

from bot.engine.pricing import PRICE_KEY, PriceBook, PriceSource

FALLBACK = 45_000


async def test_the_quote_is_used_and_kept_in_the_database(fake_runcomfy, runcomfy_client, storage):
    book = PriceBook(runcomfy_client, storage, FALLBACK)
    assert (book.price(), book.source) == (FALLBACK, PriceSource.SETTING)  # before anything was read
    assert await book.refresh()
    assert (book.price(), book.source) == (30_000, PriceSource.RUNCOMFY)
    assert await storage.get_meta(PRICE_KEY) == "30000"


async def test_an_unusable_quote_falls_back_to_the_setting_and_says_so(fake_runcomfy, runcomfy_client, storage, caplog):
    book = PriceBook(runcomfy_client, storage, FALLBACK)
    await book.refresh()
    fake_runcomfy.model_info = fake_runcomfy.model_info | {"base_price_usd": "free"}
    with caplog.at_level(logging.WARNING, logger="bot.pricing"):
        assert await book.refresh()
    assert (book.price(), book.source) == (FALLBACK, PriceSource.SETTING)
    assert "no usable per-image price" in caplog.text and "PRICE_PER_IMAGE_USD ($0.045 per image)" in caplog.text
    assert await storage.get_meta(PRICE_KEY) == "30000"  # the last good one stays


async def test_unreachable_runcomfy_keeps_the_last_good_price_across_a_restart(
    fake_runcomfy, runcomfy_client, storage, caplog
):
    fake_runcomfy.model_info = fake_runcomfy.model_info | {"base_price_usd": 0.025}
    await PriceBook(runcomfy_client, storage, FALLBACK).refresh()
    restarted = PriceBook(runcomfy_client, storage, FALLBACK)
    await restarted.load()
    fake_runcomfy.fail_next("model", 503, times=10)
    with caplog.at_level(logging.WARNING, logger="bot.pricing"):
        assert not await restarted.refresh()
    assert (restarted.price(), restarted.source) == (25_000, PriceSource.STORED)
    assert "the last price read, $0.025 per image, is used" in caplog.text


async def test_a_corrupt_stored_price_is_ignored(runcomfy_client, storage):
    for bad in ("-5", "abc", str(10**12)):
        await storage.set_meta(PRICE_KEY, bad)
        book = PriceBook(runcomfy_client, storage, FALLBACK)
        await book.load()
        assert (book.price(), book.source) == (FALLBACK, PriceSource.SETTING)


async def test_out_of_credit_until_a_probe_succeeds(fake_runcomfy, runcomfy_client, storage):
    heard = []

    async def listener(out: bool) -> None:
        heard.append(out)

    book = PriceBook(runcomfy_client, storage, FALLBACK, refresh_seconds=3600, probe_seconds=0.05)
    book.on_credit_change(listener)
    book.start()
    try:
        fake_runcomfy.out_of_credit = True
        await book.mark_out_of_credit()
        await book.mark_out_of_credit()  # told once
        assert book.out_of_credit and heard == [True]
        for _ in range(100):
            if fake_runcomfy.counts["model"] >= 2:
                break
            await asyncio.sleep(0.02)
        assert book.out_of_credit  # the probes still see 402
        fake_runcomfy.out_of_credit = False
        for _ in range(200):
            if not book.out_of_credit:
                break
            await asyncio.sleep(0.02)
        assert not book.out_of_credit and heard == [True, False]
    finally:
        await book.close()


async def test_a_402_on_the_price_call_marks_the_account_out_of_credit(fake_runcomfy, runcomfy_client, storage):
    book = PriceBook(runcomfy_client, storage, FALLBACK)
    fake_runcomfy.out_of_credit = True
    assert not await book.refresh()
    assert book.out_of_credit
