"""The tests' own PostgreSQL cluster: it runs (as the `postgres` user when the tests run as root), each test gets
an empty database of its own, and a missing server means a visible skip."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tests.fixtures.postgres import PASSWORD, Cluster, find_bindir


async def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        server_user = await connection.fetchval("SELECT usename FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        version = await connection.fetchval("SHOW server_version_num")
    finally:
        await connection.close()
    assert tables == 0 and server_user == "seedream" and int(version) >= 150000


async def test_over_tcp_a_password_is_required(postgres_cluster: Cluster) -> None:
    connection = await asyncpg.connect(postgres_cluster.tcp_url())
    await connection.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(postgres_cluster.tcp_url(password="wrong-" + PASSWORD))


def test_the_server_programs_are_found_or_named_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDREAM_TEST_PG_BINDIR", "")
    assert find_bindir() is None  # the cluster fixture then skips with its reason
    monkeypatch.delenv("SEEDREAM_TEST_PG_BINDIR")
    found = find_bindir()
    if found is None:
        pytest.skip("PostgreSQL server programs not found on this machine")
    assert (found / "initdb").is_file() and os.access(found / "pg_ctl", os.X_OK)
