"""Counting a member's unfinished jobs reads the partial index of unfinished jobs, not every job they ever made."""

from __future__ import annotations

import pytest

from bot.engine.quota_snapshot import SNAPSHOT_SQL, snapshot_parameters
from bot.store.database import Storage
from bot.store.migrations import UNFINISHED_SQL
from tests.fixtures.postgres import SQLITE_ONLY


@SQLITE_ONLY  # SQLite's query planner; PostgreSQL's picks by table sizes
@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT count(*) FROM jobs WHERE guild_id = :guild AND user_id = :user AND {UNFINISHED_SQL}",
        SNAPSHOT_SQL,
    ],
    ids=["unfinished count", "quota snapshot"],
)
async def test_unfinished_jobs_are_counted_from_the_partial_index(storage: Storage, sql: str):
    plan = await storage.fetchall(f"EXPLAIN QUERY PLAN {sql}", snapshot_parameters(1, 2, 1_000_000.0))
    details = " | ".join(str(row[3]) for row in plan)
    assert "jobs_unfinished" in details, details
