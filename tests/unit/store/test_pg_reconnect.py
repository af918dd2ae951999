"""PostgreSQL drops the bot's connections (a restart, a failover, an admin's pg_terminate_backend): the next
statements run on new connections; what failed meanwhile failed as `DatabaseUnavailable`, which callers may retry."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.store.database import Storage


async def test_statements_after_the_server_dropped_every_connection_work(postgres_url: str) -> None:
    storage = await Storage.open(postgres_url)
    try:
        await storage.set_meta("k", "before")
        admin = await asyncpg.connect(postgres_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.2)  # the client hears of it
        await storage.set_meta("k", "after")
        assert await storage.get_meta("k") == "after"
    finally:
        await storage.close()


async def test_driver_errors_become_the_stores_without_the_password(postgres_cluster, postgres_url: str) -> None:
    from bot.store.errors import DatabaseError, DatabaseUnavailable, IntegrityViolation
    from bot.store.postgres import PostgresDatabase
    from tests.fixtures.postgres import PASSWORD

    database = await PostgresDatabase.connect(postgres_url)
    try:
        await database.fetchall("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        await database.fetchall("INSERT INTO t VALUES (?)", (1,))
        with pytest.raises(IntegrityViolation, match="duplicate key"):
            await database.fetchall("INSERT INTO t VALUES (?)", (1,))
        with pytest.raises(DatabaseError) as wrong_type:  # a bug, not an outage: not DatabaseUnavailable
            await database.fetchall("INSERT INTO t VALUES (?)", ("one",))
        assert not isinstance(wrong_type.value, DatabaseUnavailable)
    finally:
        await database.close()
    with pytest.raises(DatabaseUnavailable) as away:
        await PostgresDatabase.connect(f"postgresql://bot:{PASSWORD}@127.0.0.1:{_closed_port()}/x", wait=2)
    assert PASSWORD not in str(away.value) and "bot:***@127.0.0.1" in str(away.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
