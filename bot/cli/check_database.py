"""The database line of `seedream-bot check`: with DATABASE_URL, can PostgreSQL be reached and which schema is in
it; else the SQLite file's folder, and the file's schema version if it exists.

Only reads: the schema is neither made nor upgraded here (the bot does that when it starts).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.cli.check import CheckResult, check_folder
from bot.store import pg_schema
from bot.store.dburl import mask_url
from bot.store.errors import StorageError
from bot.store.migrations import LATEST_VERSION
from bot.store.postgres import PostgresDatabase

CONNECT_WAIT = 10.0


async def check_postgres(url: str, *, wait: float = CONNECT_WAIT) -> CheckResult:
    where = mask_url(url)
    try:
        database = await PostgresDatabase.connect(url, max_size=1, wait=wait)
    except StorageError as exc:
        return CheckResult("database", False, str(exc))
    try:
        async with database.connection() as connection:
            version = await pg_schema.schema_version(connection)
    except StorageError as exc:
        return CheckResult("database", False, f"{where}: {exc}")
    finally:
        await database.close()
    if version > LATEST_VERSION:
        return CheckResult(
            "database", False, f"{where}: schema version {version} is newer than this release knows "
            f"({LATEST_VERSION}): upgrade seedream-bot"
        )  # fmt: skip
    if version == 0:
        return CheckResult("database", True, f"{where}: reachable and empty; the bot makes its tables on first start")
    if version < LATEST_VERSION:
        return CheckResult(
            "database", True, f"{where}: schema version {version}, upgraded to {LATEST_VERSION} when the bot starts"
        )
    return CheckResult("database", True, f"{where}: schema version {version} (current)")


def check_sqlite(path: Path) -> CheckResult:
    """`check_folder` for DATABASE_PATH, then the schema version of the file if there is one (blocking)."""
    folder = check_folder("database folder", path)
    if not folder.ok or not path.is_file():
        return folder
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return CheckResult(folder.name, False, f"{path} cannot be read as an SQLite database ({exc})")
    if version > LATEST_VERSION:
        return CheckResult(
            folder.name, False, f"{path}: schema version {version} is newer than this release knows "
            f"({LATEST_VERSION}): upgrade seedream-bot"
        )  # fmt: skip
    if version < LATEST_VERSION:
        return CheckResult(
            folder.name, True, f"{folder.detail}; {path.name} has schema version {version}, upgraded to "
            f"{LATEST_VERSION} when the bot starts"
        )  # fmt: skip
    return CheckResult(folder.name, True, f"{folder.detail}; {path.name} has schema version {version} (current)")
