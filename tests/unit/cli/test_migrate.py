"""`seedream-bot migrate-to-postgres`: every table of the SQLite file lands in PostgreSQL, checked, and the bot
reads the same jobs, usage and settings from the copy; a non-empty target or a running bot is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from bot.domain.job_state import JobState
from bot.engine.prompt_filter import PromptFilter
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.store.database import Storage
from bot.store.lock import DatabaseLock
from bot.store.money import MoneyStore
from tests.fixtures.storage import START_TIME, ManualClock

REPO = Path(__file__).resolve().parents[3]
GUILD, OTHER_GUILD, ROLE = 4004, 5005, 66
DEFAULTS = QuotaDefaults(30, "day", 5)


async def fill(path: Path) -> None:
    """A database that has seen some use: finished and unfinished jobs, overrides, a reset, terms, alerts."""
    clock = ManualClock(START_TIME)
    storage = await Storage.open(path, clock=clock)
    quotas = Quotas(storage, DEFAULTS, clock=clock, price_per_image=lambda: 30_000)
    try:
        await quotas.set_guild_defaults(GUILD, images=40, max_concurrent=4)
        await quotas.set_role_limit(GUILD, ROLE, None)
        await quotas.set_user_limit(GUILD, 8, 5)
        await quotas.set_budget(OTHER_GUILD, 100, usd_micros=2_000_000)
        for user, images in ((7, 3), (7, 2), (8, 4), (9, 1)):
            job = await quotas.reserve(GUILD, user, (), images, channel_id=1, options={"prompt": "p", "n": images})
            await storage.mark_submitting(job.id)
            await storage.set_request_id(job.id, f"req-{job.id}")
            await storage.transition(job.id, JobState.DELIVERING)
            cost = 10_000 * images if images != 2 else None
            await storage.finish_job(
                job.id, JobState.DELIVERED, images_delivered=images - (images == 4), cost_micros=cost
            )
            clock.advance(60)
        await quotas.reserve(GUILD, 7, (ROLE,), 6, channel_id=1, options={"prompt": "still running"})
        await quotas.reserve(GUILD, 7, (ROLE,), 1, channel_id=1, options={"prompt": "same instant"})
        failed = await quotas.reserve(OTHER_GUILD, 9, (), 2, channel_id=1, options={})
        await storage.finish_job(failed.id, JobState.FAILED, error="upstream")
        await quotas.reset_usage(GUILD, 9)
        filters = PromptFilter(storage, clock=clock)
        await filters.add(GUILD, "gore", added_by=1)
        await MoneyStore(storage).first_alert(OTHER_GUILD, START_TIME, 80, START_TIME)
        await MoneyStore(storage).set_alert_channel(OTHER_GUILD, 1234)
        await storage.set_meta("run_time:fast:default", '{"seconds_per_image": 2.1, "spread": 0.2, "runs": 4}')
    finally:
        await storage.close()


def migrate(tmp_path: Path, path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DISCORD_", "RUNCOMFY_"))}
    env.update(DATABASE_PATH=str(path), DATABASE_URL=url, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bot", "migrate-to-postgres", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


async def snapshot(target: str | Path) -> dict[str, object]:
    """What the bot reads: jobs in order, usage, limits, spend, terms, meta."""
    clock = ManualClock(START_TIME + 600)
    storage = await Storage.open(target, clock=clock)
    quotas = Quotas(storage, DEFAULTS, clock=clock)
    try:
        return {
            "unfinished": await storage.unfinished_jobs(),
            "recent": [await storage.recent_jobs(GUILD, user) for user in (7, 8, 9)],
            "usage": [await quotas.usage(GUILD, user, (ROLE,)) for user in (7, 8, 9)],
            "server": (await quotas.guild_usage(GUILD), await quotas.guild_spend(OTHER_GUILD)),
            "settings": (await quotas.guild_settings(GUILD), await quotas.guild_settings(OTHER_GUILD)),
            "overrides": await quotas.overrides(GUILD),
            "spenders": await MoneyStore(storage).top_spenders(GUILD, 0),
            "alerts": await MoneyStore(storage).alert_channels(),
            "terms": [term.term for term in await PromptFilter(storage).terms(GUILD)],
            "meta": await storage.get_meta("run_time:fast:default"),
        }
    finally:
        await storage.close()


async def test_every_table_is_copied_and_the_bot_reads_the_same(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "seedream.db"
    await fill(path)
    done = await asyncio.to_thread(migrate, tmp_path, path, postgres_url)
    assert done.returncode == 0, done.stderr
    assert "jobs: 7 rows" in done.stdout and "guilds: 2 rows" in done.stdout and "done:" in done.stdout
    before, after = await snapshot(path), await snapshot(postgres_url)
    assert after == before
    assert len(before["unfinished"]) == 2 and before["usage"][0].reserved == 7  # type: ignore[index]


async def test_a_target_with_data_is_refused_unless_replaced(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "seedream.db"
    await fill(path)
    assert (await asyncio.to_thread(migrate, tmp_path, path, postgres_url)).returncode == 0
    again = await asyncio.to_thread(migrate, tmp_path, path, postgres_url)
    assert again.returncode == 2 and "already holds rows (" in again.stderr and "--replace" in again.stderr
    replaced = await asyncio.to_thread(migrate, tmp_path, path, postgres_url, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert await snapshot(postgres_url) == await snapshot(path)


async def test_a_running_bot_or_no_file_is_refused(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "seedream.db"
    missing = await asyncio.to_thread(migrate, tmp_path, path, postgres_url)
    assert missing.returncode == 2 and "no SQLite database at" in missing.stderr
    await fill(path)
    lock = DatabaseLock.acquire(path)
    try:
        held = await asyncio.to_thread(migrate, tmp_path, path, postgres_url)
    finally:
        lock.release()
    assert held.returncode == 2 and "in use by another seedream-bot" in held.stderr
