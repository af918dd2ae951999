"""`seedream-bot migrate-to-postgres`: copy every table of the SQLite file (DATABASE_PATH) into PostgreSQL
(DATABASE_URL), then check that the copy holds as many rows as the file.

The file is locked like a running bot locks it, so the bot must be stopped first (and cannot start meanwhile), and
is upgraded to this release's schema if it is older. PostgreSQL gets the same schema, then every row in one
transaction: a failure leaves it as it was. The usage counters per day are not copied but rebuilt by PostgreSQL's
trigger as the jobs arrive, and checked against the file's. A target that already holds data is refused unless
`--replace` says to empty it first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.settings import Settings, load_settings
from bot.store.database import Storage
from bot.store.errors import StorageError
from bot.store.lock import DatabaseLock, DatabaseLocked, DatabaseLockError
from bot.store.postgres import PgConnection
from bot.store.sqlite import SqliteDatabase

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CHUNK = 2_000  # rows read from the file and sent at once

DESCRIPTION = (
    "Copy every table of the SQLite database (DATABASE_PATH) into the PostgreSQL database (DATABASE_URL) and check "
    "the row counts. Stop the bot first. PostgreSQL must be empty, or give --replace to empty it."
)
EPILOG = "exit codes: 0 copied and checked, 1 the copy failed (nothing was kept), 2 bad settings or a non-empty target."

COUNTERS = ("user_usage_days", "guild_usage_days")  # rebuilt by the trigger on jobs, not copied
_FIRST = ("meta", "guilds")  # tables others refer to
_COUNTER_SUMS = {
    "user_usage_days": "coalesce(sum(charged), 0), coalesce(sum(reserved), 0)",
    "guild_usage_days": "coalesce(sum(charged), 0), coalesce(sum(reserved), 0), coalesce(sum(spent_micros), 0), "
    "coalesce(sum(held_micros), 0)",
}


class MigrationRefused(Exception):
    """The target is not empty (and --replace was not given), or a table has no counterpart."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replace", action="store_true", help="empty the PostgreSQL database first")


async def _tables(source: SqliteDatabase) -> list[tuple[str, list[str]]]:
    """(table, columns) of the file, in the order they are copied."""
    names = [
        row[0]
        for row in await source.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    names.sort(key=lambda name: (_FIRST.index(name) if name in _FIRST else len(_FIRST), name))
    return [(name, [row[1] for row in await source.fetchall(f'PRAGMA table_info("{name}")')]) for name in names]


async def _target_rows(target: PgConnection, tables: Sequence[str]) -> dict[str, int]:
    return {name: int((await target.fetchall(f'SELECT count(*) FROM "{name}"'))[0][0]) for name in tables}


async def _copy_table(source: SqliteDatabase, target: PgConnection, table: str, columns: list[str]) -> int:
    listed = ", ".join(f'"{column}"' for column in columns)
    order = " ORDER BY rowid" if table == "jobs" else ""  # jobs keep their order (created_at, then rowid)
    cursor = await source.db.execute(f'SELECT {listed} FROM "{table}"{order}')
    copied = 0
    try:
        while records := [tuple(row) for row in await cursor.fetchmany(CHUNK)]:
            await target.copy_records(table, columns, records)
            copied += len(records)
    finally:
        await cursor.close()
    return copied


async def migrate(settings: Settings, *, replace: bool = False, out: Any = sys.stdout) -> dict[str, int]:
    """Copy and check; returns the rows copied per table. Raises `MigrationRefused` or `StorageError`."""
    if not settings.database_url:
        raise MigrationRefused("DATABASE_URL is not set: give the PostgreSQL database to copy into")
    source_storage = await Storage.open(settings.database_path)
    try:
        target_storage = await Storage.open(settings.database_url)
        try:
            return await _copy_all(source_storage.sqlite, target_storage, replace=replace, out=out)
        finally:
            await target_storage.close()
    finally:
        await source_storage.close()


async def _copy_all(source: SqliteDatabase, target: Storage, *, replace: bool, out: Any) -> dict[str, int]:
    tables = await _tables(source)
    copied: dict[str, int] = {}
    async with target.postgres.transaction() as tx:
        missing = []
        for name, _ in tables:
            if not (await tx.fetchall("SELECT to_regclass(?) IS NOT NULL", (name,)))[0][0]:
                missing.append(name)
        if missing:
            raise MigrationRefused(f"PostgreSQL has no table {', '.join(missing)}: is it the same release?")
        present = await _target_rows(tx, [name for name, _ in tables])
        if any(present.values()):
            if not replace:
                held = ", ".join(f"{name} ({count})" for name, count in present.items() if count)
                raise MigrationRefused(
                    f"the PostgreSQL database already holds rows ({held}): give --replace to empty it"
                )
            await tx.script("TRUNCATE " + ", ".join(f'"{name}"' for name, _ in tables) + " RESTART IDENTITY CASCADE")
        await source.db.execute("BEGIN")  # one snapshot of the file for the whole copy
        try:
            for name, columns in tables:
                if name not in COUNTERS:
                    copied[name] = await _copy_table(source, tx, name, columns)
            await _check(source, tx, tables)
        finally:
            await source.db.execute("ROLLBACK")
    for name, count in copied.items():
        print(f"{name}: {count} rows", file=out)
    return copied


async def _check(source: SqliteDatabase, target: PgConnection, tables: list[tuple[str, list[str]]]) -> None:
    """The copy holds as many rows as the file, and the rebuilt counters add up to the file's."""
    for name, _ in tables:
        if name in COUNTERS:
            expected = tuple(int(v) for v in (await source.fetchall(f"SELECT {_COUNTER_SUMS[name]} FROM {name}"))[0])
            found = tuple(int(v) for v in (await target.fetchall(f"SELECT {_COUNTER_SUMS[name]} FROM {name}"))[0])
        else:
            expected = (int((await source.fetchall(f'SELECT count(*) FROM "{name}"'))[0][0]),)
            found = (int((await target.fetchall(f'SELECT count(*) FROM "{name}"'))[0][0]),)
        if expected != found:
            raise StorageError(f"the copy of {name} does not match the file ({found} instead of {expected}); "
                               "nothing was kept")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    settings = load_settings(require="none", create_dirs=False)
    if not Path(settings.database_path).is_file():
        print(f"seedream-bot migrate-to-postgres: no SQLite database at {settings.database_path} (DATABASE_PATH)",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        lock = DatabaseLock.acquire(settings.database_path)
    except (DatabaseLocked, DatabaseLockError) as exc:
        print(f"seedream-bot migrate-to-postgres: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(migrate(settings, replace=args.replace))
    except MigrationRefused as exc:
        print(f"seedream-bot migrate-to-postgres: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StorageError as exc:
        print(f"seedream-bot migrate-to-postgres: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        lock.release()
    print("done: every table copied and its rows counted; set DATABASE_URL for the bot from now on")
    return EXIT_OK
