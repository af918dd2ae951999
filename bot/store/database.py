"""The database: SQLite (a file, the default) or PostgreSQL (`DATABASE_URL`), its jobs and meta values.

`Storage.open` takes a file path (SQLite, see `bot.store.sqlite`) or a `postgresql://` URL (see
`bot.store.postgres`); either way the schema is upgraded on open and the same statements run on both (written in
the SQL they share, see `bot.store.sql`). A job's state is written only by `bot.store.job_states`, in
compare-and-set statements.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from bot.domain.job import JOB_COLUMNS, Job
from bot.domain.job_state import JobState
from bot.store import job_states, pg_schema
from bot.store.dburl import is_postgres_url, mask_url
from bot.store.errors import JobNotFound, StorageError, storage_failure
from bot.store.migrations import LATEST_VERSION, UNFINISHED_SQL, NewerSchema
from bot.store.postgres import PostgresDatabase
from bot.store.rows import Row
from bot.store.sqlite import SqliteDatabase
from bot.store.transaction import Transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]


_REPLY_FIELDS = ("interaction_token", "application_id", "token_created_at", "reply_message_id", "reply_channel_id")


class Storage:
    """The open database. Create with `await Storage.open(path or URL)`; `await close()` when done."""

    def __init__(self, backend: SqliteDatabase | PostgresDatabase, clock: Callable[[], float]) -> None:
        self._backend = backend
        self._clock = clock
        self.owner: str | None = None  # the process that takes the jobs it submits (see bot.store.leases)

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    @classmethod
    async def open(
        cls, target: str | Path, *, busy_timeout: float = 5.0, clock: Callable[[], float] = time.time
    ) -> Storage:
        """Open (creating if needed) and upgrade the database. Raises `StorageError` with a clear message.

        `target`: an SQLite file's path, or a `postgresql://` URL (the database must exist; its tables are made).
        """
        if is_postgres_url(target):
            return cls(await _open_postgres(str(target)), clock)
        return cls(await SqliteDatabase.open(Path(target), busy_timeout=busy_timeout), clock)

    async def close(self) -> None:
        await self._backend.close()

    @property
    def dialect(self) -> Dialect:
        return "sqlite" if isinstance(self._backend, SqliteDatabase) else "postgresql"

    @property
    def location(self) -> str:
        """The file, or the URL with its password masked: fit for messages."""
        if isinstance(self._backend, SqliteDatabase):
            return str(self._backend.path)
        return mask_url(self._backend.url)

    @property
    def sqlite(self) -> SqliteDatabase:
        """The SQLite file (only where the database is one; see `dialect`)."""
        if not isinstance(self._backend, SqliteDatabase):
            raise TypeError("this storage is PostgreSQL, not an SQLite file")
        return self._backend

    @property
    def postgres(self) -> PostgresDatabase:
        """The PostgreSQL pool (only where the database is one; see `dialect`)."""
        if not isinstance(self._backend, PostgresDatabase):
            raise TypeError("this storage is an SQLite file, not PostgreSQL")
        return self._backend

    @property
    def db(self) -> aiosqlite.Connection:
        return self.sqlite.db

    @property
    def path(self) -> Path:
        return self.sqlite.path

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction: `COMMIT` at the end of the block, `ROLLBACK` if it raises.

        On SQLite it is `BEGIN IMMEDIATE` (the write lock is taken before anything is read); on PostgreSQL it is
        READ COMMITTED, so a block that must not race another process takes a lock first (see `Quotas.reserve`).
        """
        async with self._backend.transaction() as tx:
            yield tx

    async def run_transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite only: the blocking `body(connection)` in one transaction on the database thread."""
        return await self.sqlite.run_transaction(body)

    async def write(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Run one writing statement (its own transaction) and return its rows (from `RETURNING`)."""
        if isinstance(self._backend, SqliteDatabase):
            return await self._backend.write(sql, parameters)
        return await self._backend.fetchall(sql, parameters)

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Run one reading statement and return all its rows."""
        return await self._backend.fetchall(sql, parameters)

    async def _job_or_raise(self, job_id: str) -> Job:
        job = await self.get_job(job_id)
        if job is None:
            raise JobNotFound(f"No job has the id {job_id!r}.")
        return job

    # jobs

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self.fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return Job.from_row(rows[0]) if rows else None

    async def job_by_request_id(self, request_id: str) -> Job | None:
        rows = await self.fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = ?", (request_id,))
        return Job.from_row(rows[0]) if rows else None

    async def mark_submitting(self, job_id: str) -> Job:
        """Record, in its own commit, that the submit request of a pending job is about to be sent."""
        return await job_states.mark_submitting(self, job_id)

    async def set_request_id(self, job_id: str, request_id: str) -> Job:
        """Record RunComfy's request id and move the job from pending to submitted."""
        return await job_states.set_request_id(self, job_id, request_id)

    async def transition(
        self, job_id: str, new: JobState, *, queue_position: int | None = None, error: str | None = None
    ) -> Job:
        """Move a job to a non-terminal state (or stay, to update its queue position); see `job_states`."""
        return await job_states.transition(self, job_id, new, queue_position=queue_position, error=error)

    async def try_transition(self, job: Job, new: JobState, *, queue_position: int | None = None) -> Job | None:
        """`transition` from the state `job` was seen in, without reading it first; None if it moved on meanwhile."""
        return await job_states.try_transition(self, job, new, queue_position=queue_position)

    async def finish_job(
        self,
        job_id: str,
        final: JobState,
        *,
        images_delivered: int = 0,
        error: str | None = None,
        seen: Job | None = None,
        cost_micros: int | None = None,
    ) -> Job:
        """End a job and settle its quota, exactly once; see `job_states.finish_job` (`seen`: the job as last seen)."""
        return await job_states.finish_job(
            self, job_id, final, images_delivered=images_delivered, error=error, seen=seen, cost_micros=cost_micros
        )

    async def unknown_outcome_jobs(self, guild_id: int, limit: int = 10) -> list[Job]:
        """A guild's jobs whose submit outcome is unknown, newest first."""
        rows = await self.fetchall(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND state = '{JobState.UNKNOWN}'
                ORDER BY created_at DESC, rowid DESC LIMIT ?""",
            (guild_id, limit),
        )
        return [Job.from_row(row) for row in rows]

    async def set_reply(
        self,
        job_id: str,
        *,
        interaction_token: str | None = None,
        application_id: int | None = None,
        token_created_at: float | None = None,
        reply_message_id: int | None = None,
        reply_channel_id: int | None = None,
    ) -> Job:
        """Record where the job's reply lives; only the fields given are changed."""
        given = {
            name: value
            for name, value in zip(
                _REPLY_FIELDS,
                (interaction_token, application_id, token_created_at, reply_message_id, reply_channel_id),
                strict=True,
            )
            if value is not None
        }
        if not given:
            return await self._job_or_raise(job_id)
        assignments = ", ".join(f"{name} = :{name}" for name in given)  # names come from _REPLY_FIELDS only
        rows = await self.write(
            f"UPDATE jobs SET {assignments}, updated_at = :now WHERE id = :id RETURNING {JOB_COLUMNS}",
            {**given, "now": self._clock(), "id": job_id},
        )
        if not rows:
            raise JobNotFound(f"No job has the id {job_id!r}.")
        return Job.from_row(rows[0])

    async def unfinished_jobs(self) -> list[Job]:
        """Every job not yet in a final state, oldest first: what a restart must resume."""
        rows = await self.fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {UNFINISHED_SQL} ORDER BY created_at, rowid")
        return [Job.from_row(row) for row in rows]

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        """A user's latest jobs in a guild, newest first."""
        if limit < 0:
            raise ValueError("limit must be >= 0")
        rows = await self.fetchall(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND user_id = ?
                ORDER BY created_at DESC, rowid DESC LIMIT ?""",
            (guild_id, user_id, limit),
        )
        return [Job.from_row(row) for row in rows]

    # meta

    async def get_meta(self, key: str) -> str | None:
        rows = await self.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


async def _open_postgres(url: str) -> PostgresDatabase:
    database = await PostgresDatabase.connect(url)
    try:
        found, now = await pg_schema.upgrade(database)
    except NewerSchema as exc:
        await database.close()
        raise StorageError(
            f"The database {mask_url(url)} was written by a newer release of seedream-bot (schema version "
            f"{exc.found}; this release knows up to version {exc.latest}). Upgrade seedream-bot, or set DATABASE_URL "
            "to another database."
        ) from None
    except BaseException:
        await database.close()
        raise
    if found != now:
        log.info("database %s upgraded from schema version %d to %d", mask_url(url), found, now)
    return database


__all__ = ["LATEST_VERSION", "Job", "JobNotFound", "Storage", "StorageError", "storage_failure"]
