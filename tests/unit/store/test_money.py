"""Money in the database: quoted price per job, actual or estimated cost, dollar budgets checked at reservation."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord.texts import quota_refusal
from bot.domain.job_state import JobState
from bot.engine.quotas import Quotas
from bot.engine.refusals import OverBudget, QuotaRefused
from bot.store.money import MoneyStore
from tests.fixtures.storage import CHANNEL_ID, GUILD_ID, USER_ID

PRICE = 30_000


@pytest.fixture
def price_box():
    return {"micros": PRICE}


@pytest.fixture
def priced(storage, quota_defaults, storage_clock, price_box):
    return Quotas(storage, quota_defaults, clock=storage_clock, price_per_image=lambda: price_box["micros"])


async def reserve(quotas, images=3, user_id=USER_ID):
    return await quotas.reserve(
        GUILD_ID, user_id, (), images, channel_id=CHANNEL_ID, options={"prompt": "p", "images": images}
    )


async def submitted(storage, job):
    await storage.mark_submitting(job.id)
    return await storage.set_request_id(job.id, f"req-{job.id}")


async def deliver(storage, job, images, cost=None):
    await storage.transition(job.id, JobState.DELIVERING)
    return await storage.finish_job(job.id, JobState.DELIVERED, images_delivered=images, cost_micros=cost)


async def test_a_job_keeps_its_quoted_price_and_runcomfys_cost(storage, priced):
    job = await submitted(storage, await reserve(priced, 3))
    assert job.price_micros == PRICE
    ended = await deliver(storage, job, 2, cost=61_000)
    assert (ended.price_micros, ended.cost_micros, ended.cost_estimated) == (PRICE, 61_000, False)


@pytest.mark.parametrize("final", [JobState.DELIVERED, JobState.FAILED])
async def test_runcomfys_cost_can_be_booked_with_the_settlement(storage, priced, final):
    job = await submitted(storage, await reserve(priced, 3))
    await storage.transition(job.id, JobState.DELIVERING)
    ended = await storage.finish_job(job.id, final, images_delivered=2, cost_micros=58_000)
    assert (ended.cost_micros, ended.cost_estimated, ended.settled) == (58_000, False, True)
    again = await storage.finish_job(job.id, final, images_delivered=2, cost_micros=1)  # settled: nothing changes
    assert again.cost_micros == 58_000
    with pytest.raises(ValueError):
        await storage.finish_job(job.id, final, cost_micros=-1)


@pytest.mark.parametrize(
    ("final", "delivered", "estimate"),
    [(JobState.DELIVERED, 2, 2 * PRICE), (JobState.FAILED, 0, 0), (JobState.CANCELLED, 0, 0), (JobState.UNKNOWN, 0,
     3 * PRICE)],
)  # fmt: skip
async def test_without_a_cost_from_runcomfy_an_estimate_is_stored_and_marked(storage, priced, final, delivered,
                                                                             estimate):  # fmt: skip
    job = await reserve(priced, 3)
    if final is not JobState.UNKNOWN and final is not JobState.CANCELLED:
        job = await submitted(storage, job)
    if final is JobState.DELIVERED:
        await storage.transition(job.id, JobState.DELIVERING)
    ended = await storage.finish_job(job.id, final, images_delivered=delivered)
    assert (ended.cost_micros, ended.cost_estimated) == (estimate, True)


async def test_a_dollar_budget_counts_quoted_reservations_and_booked_costs(storage, priced, storage_clock):
    await priced.set_budget(GUILD_ID, None, usd_micros=200_000)  # $0.20: six images and a bit at $0.03
    first = await submitted(storage, await reserve(priced, 3))
    assert await priced.guild_spend(GUILD_ID) == (0, 90_000)
    with pytest.raises(QuotaRefused) as refused:
        await reserve(priced, 4, user_id=USER_ID + 1)  # 0.09 held + 0.12 > 0.20
    assert refused.value.reason == "budget"
    refusal = refused.value.refusal
    assert isinstance(refusal, OverBudget) and (refusal.budget, refusal.left, refusal.wanted) == (6, 3, 4)
    text = quota_refusal(refused.value.refusal)
    assert "3 images left" in text and "$" not in text  # members see images
    await deliver(storage, first, 3, cost=150_000)  # RunComfy billed more than quoted
    assert await priced.guild_spend(GUILD_ID) == (150_000, 0)
    with pytest.raises(QuotaRefused):
        await reserve(priced, 2, user_id=USER_ID + 1)  # 0.15 + 0.06 > 0.20
    await reserve(priced, 1, user_id=USER_ID + 1)


async def test_a_burst_cannot_overspend_a_dollar_budget(storage, priced):
    await priced.set_budget(GUILD_ID, None, usd_micros=300_000)  # ten images at $0.03
    results = await asyncio.gather(
        *(reserve(priced, 1, user_id=USER_ID + n) for n in range(25)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 10
    assert all(isinstance(r, QuotaRefused) for r in results if isinstance(r, Exception))


async def test_a_price_rise_applies_to_the_next_reservation(storage, priced, price_box):
    await priced.set_budget(GUILD_ID, None, usd_micros=300_000)
    await reserve(priced, 5)
    price_box["micros"] = 60_000
    with pytest.raises(QuotaRefused):
        await reserve(priced, 3, user_id=USER_ID + 1)  # 0.15 + 0.18 > 0.30
    await reserve(priced, 2, user_id=USER_ID + 1)


async def test_the_budget_period_resets_dollars_too(storage, priced, storage_clock):
    await priced.set_budget(GUILD_ID, None, "day", usd_micros=90_000)
    await reserve(priced, 3)
    with pytest.raises(QuotaRefused):
        await reserve(priced, 1, user_id=USER_ID + 1)
    storage_clock.advance(86_400)
    await reserve(priced, 3, user_id=USER_ID + 1)


async def test_images_and_dollars_both_cap(storage, priced):
    settings = await priced.set_budget(GUILD_ID, 4, "week", usd_micros=10_000_000)
    assert (settings.budget_images, settings.budget_usd_micros, settings.budget_period) == (4, 10_000_000, "week")
    await reserve(priced, 2)
    with pytest.raises(QuotaRefused):
        await reserve(priced, 3, user_id=USER_ID + 1)
    removed = await priced.set_budget(GUILD_ID, None)
    assert (removed.budget_images, removed.budget_usd_micros, removed.budget_period) == (None, None, None)


async def test_spend_and_top_spenders_split_actual_and_estimated(storage, priced, storage_clock):
    money = MoneyStore(storage)
    a = await submitted(storage, await reserve(priced, 3, user_id=1))
    await deliver(storage, a, 3, cost=95_000)
    b = await submitted(storage, await reserve(priced, 2, user_id=2))
    await deliver(storage, b, 2)  # no cost: estimated 0.06
    await reserve(priced, 4, user_id=2)  # unfinished: holds 0.12
    spend = await money.guild_spend(GUILD_ID, since=0)
    assert (spend.actual_micros, spend.estimated_micros, spend.held_micros, spend.images) == (95_000, 60_000,
                                                                                               120_000, 5)  # fmt: skip
    top = await money.top_spenders(GUILD_ID, since=0)
    assert [(s.user_id, s.spend.total_micros) for s in top] == [(1, 95_000), (2, 60_000)]


async def test_alert_channels_and_each_budget_alert_once_per_period(storage):
    money = MoneyStore(storage)
    await money.set_alert_channel(GUILD_ID, 42)
    assert await money.alert_channel(GUILD_ID) == 42 and await money.alert_channels() == [(GUILD_ID, 42)]
    assert await money.first_alert(GUILD_ID, 1000, 80, now=1)
    assert not await money.first_alert(GUILD_ID, 1000, 80, now=2)
    assert await money.first_alert(GUILD_ID, 2000, 80, now=3)
    await money.set_alert_channel(GUILD_ID, None)
    assert await money.alert_channels() == []
