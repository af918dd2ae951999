"""`seedream-bot report`: spend per server and member, read from the database while the bot holds its lock."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import aiosqlite
import pytest

from bot.domain.job_state import JobState
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.store import migrations
from bot.store.database import Storage
from bot.store.lock import DatabaseLock
from tests.fixtures.storage import START_TIME, ManualClock

REPO = Path(__file__).resolve().parents[3]
GUILD_A, GUILD_B = 1001, 2002
DAY = 86_400


async def finished_job(storage, quotas, guild, user, images, *, cost=None, delivered=None):
    job = await quotas.reserve(guild, user, (), images, channel_id=1, options={"prompt": "p", "images": images})
    await storage.mark_submitting(job.id)
    await storage.set_request_id(job.id, f"req-{job.id}")
    await storage.transition(job.id, JobState.DELIVERING)
    await storage.finish_job(
        job.id, JobState.DELIVERED, images_delivered=images if delivered is None else delivered, cost_micros=cost
    )


@pytest.fixture
async def database(tmp_path):
    path = tmp_path / "data" / "seedream.db"
    clock = ManualClock(START_TIME)  # 2025-01-15 12:00 UTC
    storage = await Storage.open(path, clock=clock)
    quotas = Quotas(storage, QuotaDefaults(100, "day", 5), clock=clock, price_per_image=lambda: 30_000)
    try:
        await finished_job(storage, quotas, GUILD_A, 7, 3, cost=95_000)
        await finished_job(storage, quotas, GUILD_A, 8, 2)  # no cost from RunComfy: estimated $0.06
        await finished_job(storage, quotas, GUILD_B, 9, 1, cost=31_000)
        clock.advance(2 * DAY)  # 2025-01-17: outside a report until the 16th
        await finished_job(storage, quotas, GUILD_A, 7, 4, cost=120_000)
    finally:
        await storage.close()
    return path


def report(
    tmp_path: Path, database: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DISCORD_", "RUNCOMFY_"))}
    env.update(DATABASE_PATH=str(database), PYTHONPATH=str(REPO), **(extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "bot", "report", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_csv_per_server_and_member_while_the_bot_holds_the_lock(tmp_path, database):
    lock = DatabaseLock.acquire(database)
    try:
        done = await asyncio.to_thread(
            report, tmp_path, database, "--since", "2025-01-15", "--until", "2025-01-16", "--format", "csv"
        )
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["guild_id"], r["user_id"], r["images"], r["actual_usd"], r["estimated_usd"], r["total_usd"])
            for r in rows] == [
        ("1001", "", "5", "0.095000", "0.060000", "0.155000"),
        ("1001", "7", "3", "0.095000", "0.000000", "0.095000"),
        ("1001", "8", "2", "0.000000", "0.060000", "0.060000"),
        ("2002", "", "1", "0.031000", "0.000000", "0.031000"),
        ("2002", "9", "1", "0.031000", "0.000000", "0.031000"),
    ]  # fmt: skip


async def test_table_for_one_guild_with_totals(tmp_path, database):
    done = await asyncio.to_thread(report, tmp_path, database, "--since", "2025-01-01", "--guild", str(GUILD_A))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Spend from 2025-01-01 to ")
    assert lines[1].split() == ["server", "member", "jobs", "images", "billed", "estimated", "total", "in", "progress"]
    assert lines[2].split() == ["1001", "(all", "members)", "3", "9", "$0.215", "$0.06", "$0.275", "$0.00"]
    assert lines[3].split()[:2] == ["1001", "7"] and lines[-1] == "Total: $0.275"
    assert "2002" not in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "15.01.2025"], "is not a day like 2026-11-01"),
        (["--since", "2025-01-16", "--until", "2025-01-15"], "--until is before --since"),
        (["--since", "2025-01-15", "--format", "xml"], "invalid choice"),
    ],
)
async def test_bad_arguments_exit_2(tmp_path, database, args, expected):
    done = await asyncio.to_thread(report, tmp_path, database, *args)
    assert done.returncode == 2 and expected in done.stderr


async def test_no_database_says_where_it_looked(tmp_path):
    done = await asyncio.to_thread(report, tmp_path, tmp_path / "missing.db", "--since", "2025-01-01")
    assert done.returncode == 1 and "no database at" in done.stderr
    assert not (tmp_path / "missing.db").exists()


async def test_a_database_from_before_costs_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await migrations.upgrade(db, target=4)
    done = await asyncio.to_thread(report, tmp_path, path, "--since", "2025-01-01")
    assert done.returncode == 1 and "older release: start the bot once" in done.stderr


async def test_the_same_report_from_postgresql(tmp_path, postgres_url):
    clock = ManualClock(START_TIME)
    storage = await Storage.open(postgres_url, clock=clock)
    quotas = Quotas(storage, QuotaDefaults(100, "day", 5), clock=clock, price_per_image=lambda: 30_000)
    try:
        await finished_job(storage, quotas, GUILD_A, 7, 3, cost=95_000)
        await finished_job(storage, quotas, GUILD_A, 8, 2)
        await finished_job(storage, quotas, GUILD_B, 9, 1, cost=31_000)
    finally:
        await storage.close()
    env_database = {"DATABASE_URL": postgres_url}
    done = await asyncio.to_thread(
        report, tmp_path, tmp_path / "absent.db", "--since", "2025-01-15", "--format", "csv", extra=env_database
    )
    assert done.returncode == 0, done.stderr
    found = csv.DictReader(io.StringIO(done.stdout))
    rows = [(r["guild_id"], r["user_id"], r["images"], r["total_usd"]) for r in found]
    assert rows == [("1001", "", "5", "0.155000"), ("1001", "7", "3", "0.095000"), ("1001", "8", "2", "0.060000"),
                    ("2002", "", "1", "0.031000"), ("2002", "9", "1", "0.031000")]  # fmt: skip


async def test_a_postgresql_database_without_tables_says_so(tmp_path, postgres_url):
    done = await asyncio.to_thread(report, tmp_path, tmp_path / "absent.db", "--since", "2025-01-15",
                                   extra={"DATABASE_URL": postgres_url})  # fmt: skip
    assert done.returncode == 1 and "has no seedream-bot tables yet: start the bot once" in done.stderr
