"""PostgreSQL drops the bot's connections (a restart, a failover, an admin's pg_terminate_backend): the next
statements run on new connections; what failed meanwhile failed as `DatabaseUnavailable`, which callers may retry."""

from __future__ import annotations

import asyncio

import asyncpg

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
