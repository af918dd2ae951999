"""An open write transaction on the jobs database, and its blocking twin for `Storage.run_transaction`.

`Transaction` is the async side (obtained from `Storage.transaction()`); `insert_pending_job` inserts a job on a
plain `sqlite3.Connection`, for a body that runs off the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite

from bot.domain.job import JOB_COLUMNS, Job, new_job_id
from bot.domain.job_state import JobState


class Transaction:
    """An open `BEGIN IMMEDIATE` transaction; obtained from `Storage.transaction()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return list(await self.db.execute_fetchall(sql, parameters))

    async def fetchone(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, parameters)
        return rows[0] if rows else None


_INSERT_JOB_SQL = f"""INSERT INTO jobs (id, guild_id, channel_id, user_id, options, state, images_reserved,
                                        created_at, updated_at, price_micros)
                      VALUES (?, ?, ?, ?, ?, '{JobState.PENDING}', ?, ?, ?, ?) RETURNING {JOB_COLUMNS}"""


def insert_pending_job(
    connection: sqlite3.Connection,
    *,
    guild_id: int,
    channel_id: int,
    user_id: int,
    options_json: str,
    images: int,
    now: float,
    price_micros: int | None = None,
) -> Job:
    """Insert a pending job holding `images` reserved images (quoted at `price_micros` each), off the event loop."""
    while True:
        try:
            row = connection.execute(
                _INSERT_JOB_SQL,
                (new_job_id(), guild_id, channel_id, user_id, options_json, images, now, now, price_micros),
            ).fetchone()
        except sqlite3.IntegrityError as exc:
            if "jobs.id" not in str(exc):
                raise
            continue
        return Job.from_row(row)
