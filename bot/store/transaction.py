"""An open transaction on the jobs database, SQLite's or PostgreSQL's (obtained from `Storage.transaction()`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from bot.store.rows import Row


class Transaction(Protocol):
    """An open transaction, on either database; obtained from `Storage.transaction()`."""

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> Row | None: ...
