"""An open write transaction on the jobs database (obtained from `Storage.transaction()`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite


class Transaction:
    """An open `BEGIN IMMEDIATE` transaction; obtained from `Storage.transaction()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return list(await self.db.execute_fetchall(sql, parameters))

    async def fetchone(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, parameters)
        return rows[0] if rows else None
