"""Schema versions of the database, applied in order.

The version lives in `PRAGMA user_version`. Each entry of `MIGRATIONS` takes the schema from the
version before it to the next one; a release only ever appends entries, never edits old ones, so
a database made by any earlier release is upgraded in place on start. All pending steps run in one
`BEGIN IMMEDIATE` transaction: two processes starting together cannot both upgrade, and a failed
upgrade leaves the database as it was.

Versions 1-5: SQLite's history, frozen in `bot.store.sqlite_history`.
Version 6: the language a guild's admins chose for the bot's public messages (NULL: the server's own).
Version 7: processes sharing one (PostgreSQL) database. Each running process has a row with its heartbeat; a job
names the process following it (`owner`), so that the jobs of a process whose heartbeat stopped are taken over.
Written in SQL both databases accept (times in DOUBLE PRECISION: PostgreSQL's REAL is too coarse for them).

PostgreSQL databases start at version 5 (see `bot.store.pg_schema`); every version after it is one entry here,
written in the SQL both databases share, and runs on both.
"""

from __future__ import annotations

import contextlib
import sqlite3

import aiosqlite

from bot.domain.job_state import TERMINAL_STATES, sql_list
from bot.store.sqlite_history import SQLITE_HISTORY

_V6 = ("ALTER TABLE guilds ADD COLUMN language TEXT CHECK (length(language) BETWEEN 2 AND 8)",)

_V7 = (
    """
    CREATE TABLE processes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        shards TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    )
    """,
    "ALTER TABLE jobs ADD COLUMN owner TEXT",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (*SQLITE_HISTORY, _V6, _V7)
LATEST_VERSION = len(MIGRATIONS)

# Kept in step with the partial index of `bot.store.sqlite_history`, so that queries using it match its
# condition exactly.
UNFINISHED_SQL = f"state NOT IN {sql_list(TERMINAL_STATES)}"  # for queries; the steps above stay as written


class NewerSchema(Exception):
    """The database was written by a newer release than this one."""

    def __init__(self, found: int, latest: int) -> None:
        super().__init__(f"schema version {found} is newer than {latest}")
        self.found = found
        self.latest = latest


async def schema_version(db: aiosqlite.Connection) -> int:
    rows = await db.execute_fetchall("PRAGMA user_version")
    return int(next(iter(rows))[0])


async def upgrade(db: aiosqlite.Connection, *, target: int = LATEST_VERSION) -> tuple[int, int]:
    """Bring the schema up to `target`; return (version found, version now). Raises `NewerSchema`.

    `db` must be in autocommit mode (`isolation_level=None`): the transaction is explicit here.
    """
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"target must be between 0 and {LATEST_VERSION}")
    found = await schema_version(db)
    if found > LATEST_VERSION:
        raise NewerSchema(found, LATEST_VERSION)
    if found >= target:
        return found, found
    await db.execute_fetchall("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have upgraded meanwhile.
        found = await schema_version(db)
        if found > LATEST_VERSION:
            raise NewerSchema(found, LATEST_VERSION)
        for version in range(found + 1, target + 1):
            for statement in MIGRATIONS[version - 1]:
                await db.execute_fetchall(statement)
        now = max(found, target)
        # PRAGMA takes no bound parameters; `now` is an int computed here.
        await db.execute_fetchall(f"PRAGMA user_version = {int(now)}")
        await db.execute_fetchall("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # never hide why the upgrade failed
            await db.execute_fetchall("ROLLBACK")
        raise
    return found, now
