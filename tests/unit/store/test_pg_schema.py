"""The schema on PostgreSQL: made at the latest version on first open, the same tables and columns as SQLite's,
upgraded once when several processes start together, and refused when newer or not the bot's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from bot.store import pg_schema
from bot.store.database import Storage, StorageError
from bot.store.migrations import LATEST_VERSION


async def _columns_postgres(url: str) -> dict[str, list[str]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
                WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"""
        )
    finally:
        await connection.close()
    tables: dict[str, list[str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], []).append(row["column_name"])
    return tables


async def _columns_sqlite(storage: Storage) -> dict[str, list[str]]:
    names = [row[0] for row in await storage.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: [row[1] for row in await storage.fetchall(f"PRAGMA table_info({name})")] for name in names}


async def test_a_new_database_gets_the_same_tables_and_columns_as_sqlite(postgres_url: str, tmp_path: Path) -> None:
    storage = await Storage.open(postgres_url)
    try:
        assert storage.dialect == "postgresql"
        async with storage.postgres.connection() as connection:
            assert await pg_schema.schema_version(connection) == LATEST_VERSION
    finally:
        await storage.close()
    sqlite = await Storage.open(tmp_path / "seedream.db")
    try:
        expected = await _columns_sqlite(sqlite)
    finally:
        await sqlite.close()
    found = await _columns_postgres(postgres_url)
    assert found.pop("schema_version") == ["version"]
    jobs = found.pop("jobs")
    jobs.remove("rowid")  # SQLite's own, a column here
    assert jobs == expected.pop("jobs")
    assert found == expected


async def test_processes_opening_together_upgrade_once(postgres_url: str) -> None:
    opened = await asyncio.gather(*(Storage.open(postgres_url) for _ in range(4)))
    try:
        rows = await opened[0].fetchall("SELECT count(*) FROM schema_version")
        assert rows[0][0] == 1
    finally:
        for storage in opened:
            await storage.close()


async def test_a_newer_schema_is_refused_without_the_password(postgres_cluster, postgres_url: str) -> None:
    storage = await Storage.open(postgres_url)
    try:
        await storage.write("UPDATE schema_version SET version = 99")
    finally:
        await storage.close()
    with pytest.raises(StorageError) as refused:
        await Storage.open(postgres_url)
    message = str(refused.value)
    assert "newer release" in message and "version 99" in message and "set DATABASE_URL to another database" in message


async def test_a_database_holding_other_tables_is_refused(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE invoices (id integer)")
    finally:
        await connection.close()
    with pytest.raises(StorageError, match="tables that are not seedream-bot's"):
        await Storage.open(postgres_url)


async def test_a_wrong_password_is_refused_without_showing_it(postgres_cluster) -> None:
    from tests.fixtures.postgres import PASSWORD

    url = postgres_cluster.tcp_url(password="Not-" + PASSWORD)
    with pytest.raises(StorageError) as refused:
        await Storage.open(url)
    assert "refused the login" in str(refused.value) and PASSWORD not in str(refused.value)
    assert ":***@127.0.0.1" in str(refused.value)
