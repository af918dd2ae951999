"""The SQLite database file: its connection, its transactions, and how it is opened.

One file, created on first open, in WAL mode (readers never wait for the writer) with foreign keys on and a busy
time-out, so that two processes can share it. The schema is upgraded in place on open (see `bot.store.migrations`).

The connection runs in autocommit mode: a single statement is its own transaction, and multi-statement writes go
through `transaction()` (`BEGIN IMMEDIATE`, so the write lock is taken before anything is read). Writes on one
connection are serialised by a lock so a statement never lands inside another task's transaction. Reads use
`execute_fetchall`, which runs and drains a statement in one step, so no cursor stays open.
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

from bot.store.errors import StorageError
from bot.store.migrations import NewerSchema, upgrade
from bot.store.rows import Row
from bot.store.wal_checkpoints import SAFETY_PAGES, WalCheckpointer

log = logging.getLogger(__name__)
T = TypeVar("T")


class SqliteTransaction:
    """An open `BEGIN IMMEDIATE` transaction; obtained from `SqliteDatabase.transaction()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, parameters))

    async def fetchone(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, parameters)
        return rows[0] if rows else None


class SqliteDatabase:
    """The open file. Create with `await SqliteDatabase.open(path)`; `await close()` when done."""

    dialect = "sqlite"

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._write_lock = asyncio.Lock()
        self.checkpointer = WalCheckpointer(path)
        self.checkpointer.start()

    def __repr__(self) -> str:
        return f"SqliteDatabase({str(self.path)!r})"

    @classmethod
    async def open(cls, path: Path, *, busy_timeout: float = 5.0) -> SqliteDatabase:
        """Open (creating if needed) and upgrade the file. Raises `StorageError` with a clear message."""
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0 seconds")
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
        return cls(db, path)

    async def close(self) -> None:
        await self.checkpointer.stop()
        await self.db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` if the block raises."""
        async with self._write_lock:
            await self.db.execute_fetchall("BEGIN IMMEDIATE")
            try:
                yield SqliteTransaction(self.db)
                await self.db.execute_fetchall("COMMIT")
            except BaseException:
                # Shielded: a cancelled task must still end its transaction before the lock is released.
                await asyncio.shield(self._rollback())
                raise

    async def _rollback(self) -> None:
        """End the open transaction; a failure here never hides the error that caused the rollback."""
        try:
            await self.db.execute_fetchall("ROLLBACK")
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
            result: T = await self.db._execute(run, self.db._conn)  # type: ignore[no-untyped-call]
            return result

    async def write(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        async with self._write_lock:
            return list(await self.db.execute_fetchall(sql, parameters))

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, parameters))


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
    # The log is copied back by `WalCheckpointer`, not in the middle of a commit (see bot.store.wal_checkpoints).
    await db.execute_fetchall(f"PRAGMA wal_autocheckpoint = {SAFETY_PAGES}")
