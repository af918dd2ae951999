"""The SQLite database: connection, jobs and meta values.

One file at `DATABASE_PATH`, created on first start, in WAL mode (readers never wait for the
writer) with foreign keys on and a busy time-out, so that two processes can share it. The schema
is upgraded in place on open (see `bot.store.migrations`).

The connection runs in autocommit mode: a single statement is its own transaction, and multi-statement
writes go through `transaction()` (`BEGIN IMMEDIATE`, so the write lock is taken before anything is
read). A job's state is written only by `bot.store.job_states`, in compare-and-set statements. Writes on one
connection are serialised by a lock so a statement never lands inside another task's transaction.
Reads use `execute_fetchall`, which runs and drains a statement in one step, so no cursor stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.domain.job import JOB_COLUMNS, Job
from bot.domain.job_state import JobState
from bot.store import job_states
from bot.store.errors import JobNotFound, StorageError, storage_failure
from bot.store.migrations import LATEST_VERSION, UNFINISHED_SQL, NewerSchema, upgrade
from bot.store.transaction import Transaction

log = logging.getLogger(__name__)
T = TypeVar("T")


_REPLY_FIELDS = ("interaction_token", "application_id", "token_created_at", "reply_message_id", "reply_channel_id")


class Storage:
    """The open database. Create with `await Storage.open(path)`; `await close()` when done."""

    def __init__(self, db: aiosqlite.Connection, path: Path, clock: Callable[[], float]) -> None:
        self._db = db
        self._path = path
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self.owner: str | None = None  # the process that takes the jobs it submits (see bot.store.leases)

    def __repr__(self) -> str:
        return f"Storage({str(self._path)!r})"

    @classmethod
    async def open(
        cls, path: str | Path, *, busy_timeout: float = 5.0, clock: Callable[[], float] = time.time
    ) -> Storage:
        """Open (creating if needed) and upgrade the database. Raises `StorageError` with a clear message."""
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0 seconds")
        path = Path(path)
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"The database folder {path.parent} cannot be created: {exc.strerror}.") from None
        try:
            db = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"The database {path} cannot be opened: {exc}.") from None
        db.row_factory = aiosqlite.Row
        try:
            await _configure(db, busy_timeout)
            found, now = await upgrade(db)
            await _check_writable(db)
        except NewerSchema as exc:
            await db.close()
            raise StorageError(
                f"The database {path} was written by a newer release of seedream-bot (schema version {exc.found}; "
                f"this release knows up to version {exc.latest}). Upgrade seedream-bot, or set DATABASE_PATH "
                "to another file."
            ) from None
        except sqlite3.DatabaseError as exc:
            await db.close()
            hint = " Is it an SQLite database?" if "not a database" in str(exc) else ""
            if "readonly" in str(exc):
                hint = " Let the bot's user write the file and its folder."
            raise StorageError(f"The database {path} cannot be used: {exc}.{hint}") from None
        except BaseException:
            await db.close()
            raise
        if found != now:
            log.info("database %s upgraded from schema version %d to %d", path, found, now)
        return cls(db, path, clock)

    async def close(self) -> None:
        await self._db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        return self._db

    @property
    def path(self) -> Path:
        return self._path

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` if the block raises."""
        async with self._write_lock:
            await self._db.execute_fetchall("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._db)
                await self._db.execute_fetchall("COMMIT")
            except BaseException:
                # Shielded: a cancelled task must still end its transaction before the lock is released.
                await asyncio.shield(self._rollback())
                raise

    async def _rollback(self) -> None:
        """End the open transaction; a failure here never hides the error that caused the rollback."""
        try:
            await self._db.execute_fetchall("ROLLBACK")
        except sqlite3.Error as exc:
            # After a full disk or an I/O error SQLite may have rolled back already ("no transaction is active").
            log.debug("ROLLBACK failed (%s); the transaction had already ended", exc)

    async def run_transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run the blocking `body(connection)` between `BEGIN IMMEDIATE` and `COMMIT` (`ROLLBACK` if it raises).

        It runs on the database's own thread in one step, so a batch of statements pays for one hand-over
        between the event loop and that thread instead of one per statement. Nothing else runs on the
        connection meanwhile (the thread does one thing at a time).
        """

        def run(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = body(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result

        async with self._write_lock:
            # aiosqlite has no public call for this: `_execute` queues a function for its connection thread.
            result: T = await self._db._execute(run, self._db._conn)  # type: ignore[no-untyped-call]
            return result

    async def write(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one writing statement (its own transaction) and return its rows (from `RETURNING`)."""
        async with self._write_lock:
            return list(await self._db.execute_fetchall(sql, parameters))

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one reading statement and return all its rows."""
        return list(await self._db.execute_fetchall(sql, parameters))

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

    async def finish_job(
        self, job_id: str, final: JobState, *, images_delivered: int = 0, error: str | None = None
    ) -> Job:
        """End a job and settle its quota, exactly once; see `job_states.finish_job`."""
        return await job_states.finish_job(self, job_id, final, images_delivered=images_delivered, error=error)

    async def unknown_outcome_jobs(self, guild_id: int, limit: int = 10) -> list[Job]:
        """A guild's jobs whose submit outcome is unknown, newest first."""
        rows = await self.fetchall(
            f"""SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND state = '{JobState.UNKNOWN}'
                ORDER BY created_at DESC, rowid DESC LIMIT ?""",
            (guild_id, limit),
        )
        return [Job.from_row(row) for row in rows]

    async def record_cost(self, job_id: str, cost_micros: int) -> None:
        """Keep what RunComfy says a job cost; once settled, a job's cost no longer changes."""
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        await self.write(
            "UPDATE jobs SET cost_micros = ?, cost_estimated = 0 WHERE id = ? AND settled = 0", (cost_micros, job_id)
        )

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


async def _switch_to_wal(db: aiosqlite.Connection, busy_timeout: float) -> list[sqlite3.Row]:
    # Switching the journal mode does not wait on the busy handler: when another process is creating the
    # same file at that moment SQLite answers "database is locked" at once, so wait for it here.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


async def _check_writable(db: aiosqlite.Connection) -> None:
    """A write that is rolled back: a read-only file fails here, at start, not at the first command."""
    await db.execute_fetchall("BEGIN IMMEDIATE")
    try:
        await db.execute_fetchall("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_check', '')")
    finally:
        with contextlib.suppress(sqlite3.Error):
            await db.execute_fetchall("ROLLBACK")


async def _configure(db: aiosqlite.Connection, busy_timeout: float) -> None:
    await db.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    rows = await _switch_to_wal(db, busy_timeout)
    mode = next(iter(rows))[0]
    if mode != "wal":
        log.warning("the database could not switch to WAL mode (it is in %s mode)", mode)
    await db.execute_fetchall("PRAGMA foreign_keys = ON")
    # In WAL mode NORMAL is safe from corruption; a power cut may lose only the last commits.
    await db.execute_fetchall("PRAGMA synchronous = NORMAL")


__all__ = ["LATEST_VERSION", "Job", "JobNotFound", "Storage", "StorageError", "storage_failure"]
