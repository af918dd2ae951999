"""Upstream text (RunComfy errors, bodies, statuses) is masked like the logs before anyone can see it."""

from __future__ import annotations

import random
import re

import pytest

from bot.domain.seedream import build_request
from bot.logging_setup import MASK, Redactor
from bot.runcomfy.client import InvalidInputError, NotFoundError, RemoteState, RunComfyClient, RunComfyError
from tests.fixtures.runcomfy import fast_retry_policy
from tests.secrets_helpers import DISCORD_TOKEN, leaked_pieces, planted_text


def test_any_16_character_piece_of_a_secret_is_masked():
    secret = "abcdefghijklmnopqrstuvwxyz0123"
    redact = Redactor([secret])
    assert redact(f"x {secret[3:19]} y") == f"x {MASK} y"
    assert redact(f"<{secret[:20]}|{secret[10:]}>") == f"<{MASK}|{MASK}>"
    assert redact(f"short {secret[:15]} stays") == f"short {secret[:15]} stays"  # too short to be a token piece
    assert redact("nothing here") == "nothing here"


@pytest.fixture
async def client(fake_runcomfy):
    async with RunComfyClient(
        fake_runcomfy.token, fake_runcomfy.base_url, retry=fast_retry_policy(max_attempts=1), secrets=[DISCORD_TOKEN]
    ) as client:
        yield client


def clean(fake, *texts: object) -> None:
    seen = "\n".join(f"{text} {text!r}" for text in texts)
    assert leaked_pieces(seen, fake.token, DISCORD_TOKEN) == []


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 429, 500, 503])
async def test_error_answers_on_every_endpoint_are_masked(fake_runcomfy, client, status):
    planted = planted_text(fake_runcomfy.token, DISCORD_TOKEN)
    body = {"error_message": planted, "detail": planted, "message": planted, "error": planted}
    rid = (await client.submit(build_request("a kite", 2))).request_id
    for route, call in [
        ("submit", lambda: client.submit(build_request("a kite", 2))),
        ("status", lambda: client.status(rid)),
        ("result", lambda: client.result(rid)),
        ("cancel", lambda: client.cancel(rid)),
    ]:
        fake_runcomfy.fail_next(route, status, body)
        if route == "cancel" and status < 500:
            fake_runcomfy.fail_next("status", status, body)  # a refused cancel is answered from the status
        with pytest.raises(RunComfyError) as raised:
            await call()
        clean(fake_runcomfy, raised.value, raised.value.message)


async def test_texts_in_good_answers_are_masked(fake_runcomfy, client):
    planted = planted_text(fake_runcomfy.token, DISCORD_TOKEN)
    fake_runcomfy.planted = planted
    fake_runcomfy.spellings = {"in_queue": "waiting " + planted}
    fake_runcomfy.next_job(manual=True, failure=planted)
    rid = (await client.submit(build_request("a kite", 2))).request_id

    status = await client.status(rid)
    fake_runcomfy.fail(rid, planted)
    result = await client.result(rid)

    assert status.state is RemoteState.UNKNOWN and status.raw_state.startswith("waiting")
    assert result.state is RemoteState.FAILED and "Bearer ***" in result.error
    clean(fake_runcomfy, status, result)


async def test_a_request_id_or_output_url_carrying_a_secret_is_not_used(fake_runcomfy, client):
    fake_runcomfy.token = token = "runcomfy-token-0123456789abcdef"
    async with RunComfyClient(token, fake_runcomfy.base_url, retry=fast_retry_policy(max_attempts=1)) as own:
        fake_runcomfy.fail_next("submit", 200, {"request_id": f"id-{token[:20]}"})
        with pytest.raises(RunComfyError) as raised:
            await own.submit(build_request("a kite", 1))
        assert "no usable request_id" in raised.value.message
        rid = (await own.submit(build_request("a kite", 2))).request_id
        assert fake_runcomfy.state_of(rid) == "completed"
        fake_runcomfy.jobs[rid].image_urls[1] += f"?sig={token[2:20]}"
        result = await own.result(rid)
    assert result.image_urls == (fake_runcomfy.jobs[rid].image_urls[0],)


async def test_download_errors_are_masked(fake_runcomfy, client):
    fake_runcomfy.planted = planted_text(fake_runcomfy.token, DISCORD_TOKEN)
    rid = (await client.submit(build_request("a kite", 1))).request_id
    [url] = (await client.result(rid)).image_urls
    fake_runcomfy.expire(rid)
    with pytest.raises(NotFoundError) as raised:
        await client.download(url, max_bytes=10_000)
    clean(fake_runcomfy, raised.value)
    with pytest.raises(InvalidInputError) as raised:
        await client.download(f"ftp://x/{fake_runcomfy.token}", max_bytes=10_000)
    clean(fake_runcomfy, raised.value)


def test_piece_masking_finds_every_piece_a_full_scan_finds():
    def full_scan(secrets, text):
        pieces = {s[i : i + 16] for s in secrets for i in range(len(s) - 15)}
        spans: list[list[int]] = []
        for start in (i for i in range(len(text) - 15) if text[i : i + 16] in pieces):
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + 16
            else:
                spans.append([start, start + 16])
        for start, end in reversed(spans):
            text = text[:start] + MASK + text[end:]
        return text

    rnd = random.Random(7)
    for _ in range(2000):  # a two-letter alphabet makes overlapping and repeated pieces common
        secrets = ["".join(rnd.choice("ab") for _ in range(rnd.randint(16, 40))) for _ in range(2)]
        text = "".join(rnd.choice("abc") for _ in range(rnd.randint(0, 120)))
        assert Redactor(secrets)._mask_pieces(text) == full_scan(secrets, text), (secrets, text)


def test_every_token_pattern_match_contains_the_guard_that_lets_the_pattern_run():
    """A pattern skipped for lack of its guard must have had nothing to match: checked on texts built from the
    pieces the patterns look for, in every case, and the characters re also matches when ignoring case."""
    from bot.runcomfy.redact import _TOKEN_PATTERNS

    words = ["Authorization", "AUTHORIZATION", "authorızation", "Bearer", "BEARER", "Bot", "bot", "BOT", "://",
             "postgresql://u:", "@", "/webhooks/1/", "/interactions/2/", ".", "'", '"', ":", "=", " ", "\t",
             "abcdefghijklmnopqrstuvwxyz", "ABCDE", "x_y-z", "İ", "ı", "K", "ſ"]  # fmt: skip
    rnd = random.Random(11)
    matched = 0
    for _ in range(5000):
        text = "".join(rnd.choice(words) for _ in range(rnd.randint(1, 12)))
        for pattern, _, guard in _TOKEN_PATTERNS:
            if guard is not None and pattern.search(text):
                matched += 1
                assert guard in (text.lower() if pattern.flags & re.IGNORECASE else text), (pattern.pattern, text)
    assert matched > 200  # the texts do exercise the guarded patterns


def test_a_log_line_without_tokens_is_left_as_it_is_and_one_with_them_is_masked():
    redact = Redactor(["sk-abcdefghijklmnopqrstuvwxyz"])
    line = "2026-11-29T22:00:00.123Z INFO bot.engine.tracker delivered 2 of 2 image(s) job=ab12cd34ef56 request_id=4f1c"
    assert redact(line) == line
    leaky = line + " Authorization: Bot MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.discord-secret-part-abcdefghij postgresql://u:pw@h"
    assert redact(leaky) == line + f" Authorization: Bot {MASK} postgresql://u:{MASK}@h"
