"""Quota rules on a real database: limits, overrides, resets, concurrency, budget, periods, races."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from bot.discord.texts import quota_refusal
from bot.domain import periods
from bot.domain.job_state import JobState
from bot.engine.quotas import GuildQuota, Limit, Override, QuotaDefaults, Quotas
from bot.engine.refusals import OverBudget, QuotaRefused, TooManyJobs
from bot.settings import load_settings
from bot.store.database import Storage
from tests.fixtures.postgres import BACKENDS, SQLITE_ONLY
from tests.fixtures.storage import GUILD_ID, USER_ID, ManualClock
from tests.imagine_helpers import eventually

ROLE_A, ROLE_B, ROLE_C = 501, 502, 503
END_OF_DAY = datetime(2025, 1, 16, tzinfo=UTC).timestamp()  # the fixture clock is 2025-01-15 12:00 UTC


async def deliver(storage: Storage, job, images: int | None = None):
    await storage.set_request_id(job.id, f"req-{job.id}")
    await storage.transition(job.id, JobState.DELIVERING)
    delivered = job.images_reserved if images is None else images
    return await storage.finish_job(job.id, JobState.DELIVERED, images_delivered=delivered)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _settled(storage: Storage, guild_id: int, user_id: int) -> bool:
    return all(job.settled for job in await storage.recent_jobs(guild_id, user_id))


async def job_count(storage: Storage) -> int:
    return (await storage.fetchall("SELECT count(*) FROM jobs"))[0][0]


# periods


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        ("day", datetime(2025, 1, 15, 23, 59, 59), datetime(2025, 1, 15), datetime(2025, 1, 16)),
        ("day", datetime(2025, 1, 16, 0, 0, 0), datetime(2025, 1, 16), datetime(2025, 1, 17)),
        ("week", datetime(2025, 1, 19, 23, 59), datetime(2025, 1, 13), datetime(2025, 1, 20)),  # Sunday
        ("week", datetime(2025, 1, 20, 0, 0), datetime(2025, 1, 20), datetime(2025, 1, 27)),  # Monday
        ("month", datetime(2025, 1, 31, 23, 59), datetime(2025, 1, 1), datetime(2025, 2, 1)),
        ("month", datetime(2024, 12, 31, 12, 0), datetime(2024, 12, 1), datetime(2025, 1, 1)),
        ("month", datetime(2024, 2, 29, 12, 0), datetime(2024, 2, 1), datetime(2024, 3, 1)),
    ],
)
def test_periods_are_calendar_periods_in_utc(period, moment, start, end) -> None:
    utc = [value.replace(tzinfo=UTC).timestamp() for value in (moment, start, end)]
    assert periods.period_bounds(period, utc[0]) == (utc[1], utc[2])


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="day, week, month"):
        periods.period_bounds("year", 0)


# limits in force


async def test_settings_defaults_apply_until_the_guild_sets_its_own(quotas: Quotas) -> None:
    assert await quotas.effective_limit(GUILD_ID, USER_ID) == Limit(30, "server default", "day", 2)
    assert await quotas.guild_settings(GUILD_ID) == GuildQuota(30, "day", 2, None, None, True)
    updated = await quotas.set_guild_defaults(GUILD_ID, images=50, period="week")
    assert updated == GuildQuota(50, "week", 2, None, None, False)
    assert await quotas.set_guild_defaults(GUILD_ID, max_concurrent=4) == GuildQuota(50, "week", 4, None, None, False)
    assert await quotas.effective_limit(GUILD_ID, USER_ID) == Limit(50, "server default", "week", 4)
    assert await quotas.effective_limit(GUILD_ID + 1, USER_ID) == Limit(30, "server default", "day", 2)


def test_defaults_come_from_settings() -> None:
    environ = {"QUOTA_DEFAULT_IMAGES": "12", "QUOTA_PERIOD": "month", "QUOTA_MAX_CONCURRENT_JOBS": "3"}
    settings = load_settings(environ, require="none", create_dirs=False)
    assert QuotaDefaults.from_settings(settings) == QuotaDefaults(12, "month", 3)


async def test_the_most_generous_role_counts(quotas: Quotas) -> None:
    await quotas.set_role_limit(GUILD_ID, ROLE_A, 10)
    await quotas.set_role_limit(GUILD_ID, ROLE_B, 50)
    best = await quotas.effective_limit(GUILD_ID, USER_ID, [ROLE_A, ROLE_B, 999])
    assert best == Limit(50, f"role {ROLE_B}", "day", 2)
    assert (await quotas.effective_limit(GUILD_ID, USER_ID, [ROLE_A])).images == 10  # below the default, still counts
    assert (await quotas.effective_limit(GUILD_ID, USER_ID, [999])).source == "server default"
    await quotas.set_role_limit(GUILD_ID, ROLE_C, None)
    unlimited = await quotas.effective_limit(GUILD_ID, USER_ID, [ROLE_B, ROLE_C])
    assert (unlimited.images, unlimited.source) == (None, f"unlimited (role {ROLE_C})")


async def test_a_user_override_wins_over_roles_even_when_smaller(quotas: Quotas) -> None:
    await quotas.set_role_limit(GUILD_ID, ROLE_C, None)
    await quotas.set_user_limit(GUILD_ID, USER_ID, 3)
    assert await quotas.effective_limit(GUILD_ID, USER_ID, [ROLE_C]) == Limit(3, "user override", "day", 2)
    await quotas.set_user_limit(GUILD_ID, USER_ID, None)
    limit = await quotas.effective_limit(GUILD_ID, USER_ID, [ROLE_C])
    assert (limit.images, limit.source) == (None, "unlimited (user)")


async def test_the_reserved_job_is_the_job_as_stored(quotas: Quotas, storage: Storage) -> None:
    """SQLite's reservation builds its Job from what it inserted instead of reading the row back: the same Job."""
    quotas._price = lambda: 30_000
    job = await quotas.reserve(
        GUILD_ID, USER_ID, [], 3, channel_id=77, options={"prompt": "a fox", "images": 3, "aspect": "1:1"}
    )
    assert job == await storage.get_job(job.id)
    assert (job.state, job.images_reserved, job.price_micros, job.channel_id) == (JobState.PENDING, 3, 30_000, 77)


async def test_unlimited_members_reserve_past_the_default(quotas: Quotas, storage: Storage, reserve_job) -> None:
    await quotas.set_user_limit(GUILD_ID, USER_ID, None)
    for _ in range(4):
        await deliver(storage, await reserve_job(15))
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.limit, usage.remaining, usage.source) == (60, None, None, "unlimited (user)")


async def test_a_limit_of_zero_blocks(quotas: Quotas, storage: Storage, reserve_job) -> None:
    await quotas.set_user_limit(GUILD_ID, USER_ID, 0)
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(1)
    assert refused.value.reason == "limit"
    assert "quota on this server is 0" in quota_refusal(refused.value.refusal)
    assert await job_count(storage) == 0


async def test_overrides_are_listed_and_removed(quotas: Quotas) -> None:
    await quotas.set_user_limit(GUILD_ID, USER_ID, 5)
    await quotas.set_role_limit(GUILD_ID, ROLE_A, None)
    await quotas.set_role_limit(GUILD_ID, ROLE_A, 40)  # replaces
    assert await quotas.overrides(GUILD_ID) == [Override("user", USER_ID, 5), Override("role", ROLE_A, 40)]
    assert await quotas.remove_user_override(GUILD_ID, USER_ID) is True
    assert await quotas.remove_user_override(GUILD_ID, USER_ID) is False
    assert (await quotas.effective_limit(GUILD_ID, USER_ID)).source == "server default"
    assert await quotas.remove_role_override(GUILD_ID, ROLE_A) is True
    assert await quotas.overrides(GUILD_ID) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.set_user_limit(GUILD_ID, USER_ID, -1),
        lambda q: q.set_role_limit(GUILD_ID, ROLE_A, -5),
        lambda q: q.set_guild_defaults(GUILD_ID, images=-1),
        lambda q: q.set_guild_defaults(GUILD_ID, max_concurrent=0),
        lambda q: q.set_guild_defaults(GUILD_ID, period="year"),
        lambda q: q.set_budget(GUILD_ID, -10),
        lambda q: q.set_budget(GUILD_ID, 10, "fortnight"),
        lambda q: q.set_user_limit(GUILD_ID, USER_ID, True),
        lambda q: q.reserve(GUILD_ID, USER_ID, (), 0, channel_id=1, options={}),
        lambda q: q.reserve(GUILD_ID, USER_ID, (), 2, channel_id=1, options={"bad": object()}),
        lambda q: q.top_users(GUILD_ID, -1),
    ],
)
async def test_bad_values_are_refused_clearly(quotas: Quotas, call) -> None:
    with pytest.raises(ValueError, match=r"must be|must be one of|plain JSON"):
        await call(quotas)


def test_bad_defaults_are_refused() -> None:
    with pytest.raises(ValueError, match="images must be 0 or more"):
        QuotaDefaults(-1, "day", 1)


# reserving


async def test_reservations_stop_at_the_limit_with_a_clear_message(quotas: Quotas, storage: Storage, reserve_job):
    await deliver(storage, await reserve_job(15))
    await reserve_job(10)
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(6)
    assert refused.value.reason == "limit"
    assert refused.value.resets_at == END_OF_DAY
    message = quota_refusal(refused.value.refusal)
    assert "5 images left today" in message and "needs 6" in message
    assert "10 images are held by sets still in progress" in message
    assert f"<t:{int(END_OF_DAY)}:R>" in message
    assert await job_count(storage) == 2

    await reserve_job(5)
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.remaining, usage.unfinished_jobs) == (15, 15, 0, 2)
    assert (usage.limit, usage.period, usage.resets_at, usage.source) == (30, "day", END_OF_DAY, "server default")


async def test_used_up_quota_says_when_it_resets(quotas: Quotas, storage: Storage, reserve_job) -> None:
    await deliver(storage, await reserve_job(15))
    await deliver(storage, await reserve_job(15))
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(1)
    assert "used your daily quota of 30 images" in quota_refusal(refused.value.refusal)
    assert f"<t:{int(END_OF_DAY)}:R>" in quota_refusal(refused.value.refusal)


async def test_undelivered_images_come_back(quotas: Quotas, storage: Storage, reserve_job) -> None:
    await deliver(storage, await reserve_job(10), images=7)
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.remaining) == (7, 0, 23)


async def test_the_concurrency_cap(quotas: Quotas, storage: Storage, reserve_job) -> None:
    first = await reserve_job(1)
    await reserve_job(1)
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(1)
    assert refused.value.reason == "concurrency"
    assert refused.value.refusal == TooManyJobs(unfinished=2, cap=2)
    text = quota_refusal(refused.value.refusal)
    assert "2 image sets in progress" in text and "2 at a time" in text
    await reserve_job(1, user_id=USER_ID + 1)  # per member
    await storage.finish_job(first.id, JobState.CANCELLED)
    await reserve_job(1)


async def test_reset_forgets_usage_so_far_but_not_the_server_spend(quotas, storage, reserve_job, storage_clock):
    await deliver(storage, await reserve_job(15))
    running = await reserve_job(10)
    await quotas.reset_usage(GUILD_ID, USER_ID)
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.remaining, usage.unfinished_jobs) == (0, 0, 30, 1)
    await deliver(storage, running)  # charged to the job, but the reset forgave it
    assert (await quotas.usage(GUILD_ID, USER_ID)).used == 0
    assert await quotas.guild_usage(GUILD_ID) == 25
    storage_clock.advance(1)
    await deliver(storage, await reserve_job(4))
    assert (await quotas.usage(GUILD_ID, USER_ID)).used == 4
    assert await quotas.top_users(GUILD_ID) == [(USER_ID, 4)]


async def test_server_budget(quotas: Quotas, storage: Storage, reserve_job) -> None:
    assert await quotas.set_budget(GUILD_ID, 10) == GuildQuota(30, "day", 2, 10, "day", False)
    await quotas.set_user_limit(GUILD_ID, USER_ID, None)  # unlimited members spend the budget too
    await reserve_job(6)
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(5, user_id=USER_ID + 1)
    assert refused.value.reason == "budget" and refused.value.resets_at == END_OF_DAY
    assert refused.value.refusal == OverBudget(budget=10, left=4, wanted=5, period="day", resets_at=END_OF_DAY)
    assert "only 4 images left today" in quota_refusal(refused.value.refusal)
    await reserve_job(4, user_id=USER_ID + 1)
    with pytest.raises(QuotaRefused) as spent:
        await reserve_job(1, user_id=USER_ID + 2)
    assert "budget for today (10 images) is spent" in quota_refusal(spent.value.refusal)
    assert await quotas.guild_usage(GUILD_ID) == 10
    assert await quotas.set_budget(GUILD_ID, None) == GuildQuota(30, "day", 2, None, None, True)
    await reserve_job(1, user_id=USER_ID + 2)


async def test_budget_with_its_own_period(quotas: Quotas, storage: Storage, reserve_job, storage_clock) -> None:
    await quotas.set_budget(GUILD_ID, 20, "week")
    await deliver(storage, await reserve_job(15))  # Wednesday
    storage_clock.advance(86_400)  # Thursday: a new day for the member, same week for the server
    with pytest.raises(QuotaRefused) as refused:
        await reserve_job(6)
    assert refused.value.reason == "budget"
    assert "5 images left this week" in quota_refusal(refused.value.refusal)
    assert refused.value.resets_at == datetime(2025, 1, 20, tzinfo=UTC).timestamp()


async def test_top_users(quotas: Quotas, storage: Storage, reserve_job) -> None:
    await deliver(storage, await reserve_job(3, user_id=1))
    await deliver(storage, await reserve_job(9, user_id=2))
    await reserve_job(5, user_id=3)
    await storage.finish_job((await reserve_job(4, user_id=4)).id, JobState.FAILED)
    assert await quotas.top_users(GUILD_ID) == [(2, 9), (3, 5), (1, 3)]
    assert await quotas.top_users(GUILD_ID, limit=1) == [(2, 9)]


# periods rolling over


@pytest.mark.parametrize(
    ("period", "last_moment", "next_start"),
    [
        ("day", datetime(2025, 1, 15, 23, 59, 59), datetime(2025, 1, 16)),
        ("week", datetime(2025, 1, 19, 23, 59, 59), datetime(2025, 1, 20)),
        ("month", datetime(2025, 1, 31, 23, 59, 59), datetime(2025, 2, 1)),
    ],
)
async def test_quota_renews_at_the_period_boundary(quotas, storage, reserve_job, storage_clock, period, last_moment,
                                                   next_start):  # fmt: skip
    await quotas.set_guild_defaults(GUILD_ID, period=period)
    storage_clock.set(last_moment.replace(tzinfo=UTC))
    await deliver(storage, await reserve_job(15))
    await deliver(storage, await reserve_job(15))
    storage_clock.advance(0.5)
    with pytest.raises(QuotaRefused):
        await reserve_job(1)
    storage_clock.set(next_start.replace(tzinfo=UTC))
    await reserve_job(15)
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.remaining) == (0, 15, 15)


async def test_a_reservation_belongs_to_the_period_its_job_was_created_in(quotas, storage, reserve_job, storage_clock):
    storage_clock.set(datetime(2025, 1, 15, 23, 59, tzinfo=UTC))
    late = await reserve_job(10)
    storage_clock.set(datetime(2025, 1, 16, 0, 1, tzinfo=UTC))
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.unfinished_jobs) == (0, 0, 1)  # still counts towards concurrency
    await deliver(storage, late)
    assert (await quotas.usage(GUILD_ID, USER_ID)).used == 0


# races and consistency


@pytest.mark.parametrize("max_batch", [1, 128])
@pytest.mark.parametrize("rule", ["member limit", "server budget"])
async def test_200_simultaneous_reservations_from_two_connections_take_exactly_20(database_url, rule, max_batch):
    clock = ManualClock()
    first = await Storage.open(database_url, clock=clock)
    second = await Storage.open(database_url, clock=clock)
    try:
        defaults = QuotaDefaults(images=20, period="day", max_concurrent=1)
        a, b = (Quotas(s, defaults, clock=clock, max_batch=max_batch) for s in (first, second))
        await a.set_guild_defaults(GUILD_ID, max_concurrent=1_000)
        if rule == "server budget":
            await a.set_role_limit(GUILD_ID, ROLE_A, None)
            await a.set_budget(GUILD_ID, 20)

        async def attempt(n: int):
            quotas = a if n % 2 else b
            user = USER_ID if rule == "member limit" else USER_ID + n
            return await quotas.reserve(GUILD_ID, user, [ROLE_A], 1, channel_id=1, options={"n": n})

        results = await asyncio.gather(*(attempt(n) for n in range(200)), return_exceptions=True)
        reserved = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, QuotaRefused)]
        assert (len(reserved), len(refused)) == (20, 180)
        assert tuple((await first.fetchall("SELECT count(*), sum(images_reserved) FROM jobs"))[0]) == (20, 20)
    finally:
        await first.close()
        await second.close()


async def test_a_caller_cancelled_mid_reservation_gets_its_images_back(storage: Storage, quota_defaults, storage_clock):
    callers: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()

    def clock_that_cancels_the_caller() -> float:  # read on the database thread, while the job is inserted
        if callers:
            loop.call_soon_threadsafe(callers.pop().cancel)  # the caller leaves meanwhile
        return storage_clock()

    quotas = Quotas(storage, quota_defaults, clock=clock_that_cancels_the_caller)
    task = asyncio.create_task(quotas.reserve(GUILD_ID, USER_ID, (), 7, channel_id=1, options={}))
    callers.append(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    await quotas.reserve(GUILD_ID, USER_ID + 1, (), 1, channel_id=1, options={})  # runs after the undo
    await eventually(lambda: _settled(storage, GUILD_ID, USER_ID))
    [abandoned] = await storage.recent_jobs(GUILD_ID, USER_ID)
    assert (abandoned.state, abandoned.settled, abandoned.images_charged) == (JobState.CANCELLED, True, 0)
    assert (await quotas.usage(GUILD_ID, USER_ID)).reserved == 0


async def test_usage_counters_always_match_the_jobs(quotas: Quotas, storage: Storage, storage_clock) -> None:
    rng = random.Random(7)
    await quotas.set_guild_defaults(GUILD_ID, images=10_000, max_concurrent=1_000)
    open_jobs = []
    for _ in range(300):
        action = rng.random()
        storage_clock.advance(rng.choice([1, 600, 7_200]))
        user = rng.choice([1, 2, 3])
        if action < 0.5 or not open_jobs:
            open_jobs.append(await quotas.reserve(GUILD_ID, user, (), rng.randint(1, 15), channel_id=1, options={}))
        elif action < 0.95:
            job = open_jobs.pop(rng.randrange(len(open_jobs)))
            if rng.random() < 0.7:
                await deliver(storage, job, images=rng.randint(0, job.images_reserved))
            else:
                await storage.finish_job(job.id, JobState.FAILED)
        else:
            await quotas.reset_usage(GUILD_ID, user)
    expected_users: dict[tuple[int, int, int], list[int]] = {}
    server_total = 0
    for job in await storage.fetchall(
        "SELECT guild_id, user_id, created_at, settled, images_charged, images_reserved, forgiven FROM jobs"
    ):
        charged, reserved = (job[4], 0) if job[3] else (0, job[5])
        server_total += charged + reserved
        if not job[6]:
            counts = expected_users.setdefault((job[0], job[1], int(job[2] // 86400)), [0, 0])
            counts[0] += charged
            counts[1] += reserved
    counted_users = await storage.fetchall(
        """SELECT guild_id, user_id, day, charged, reserved FROM user_usage_days
            WHERE charged != 0 OR reserved != 0 ORDER BY 1, 2, 3"""
    )
    expected = sorted((*key, *counts) for key, counts in expected_users.items() if any(counts))
    assert [tuple(row) for row in counted_users] == expected
    server = await storage.fetchall("SELECT sum(charged + reserved) FROM guild_usage_days")
    assert server[0][0] == server_total > 0


@SQLITE_ONLY
async def test_a_burst_of_reservations_is_one_hand_over_to_the_database_thread(storage: Storage, quota_defaults):
    quotas = Quotas(storage, QuotaDefaults(images=10**6, period="day", max_concurrent=10**6))
    statements, transactions = [], []
    real_fetchall, real_run = storage.db.execute_fetchall, storage.run_transaction

    async def counting_fetchall(*args, **kwargs):
        statements.append(args)
        return await real_fetchall(*args, **kwargs)

    async def counting_run(body):
        transactions.append(body)
        return await real_run(body)

    storage.db.execute_fetchall = counting_fetchall
    storage.run_transaction = counting_run
    jobs = await asyncio.gather(
        *(quotas.reserve(GUILD_ID, USER_ID + n, (), 2, channel_id=1, options={}) for n in range(50))
    )

    assert len({job.id for job in jobs}) == 50
    assert statements == []  # no statement on its own: every one ran inside the batch's transaction
    assert len(transactions) <= 2  # the first reservation alone, then the other 49 together
    assert (await quotas.usage(GUILD_ID, USER_ID + 49)).reserved == 2
