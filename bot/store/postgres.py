"""PostgreSQL through asyncpg: a pool of connections, the bot's statements, and errors in the store's terms.

Statements are written once for both databases (see `bot.store.sql`); here their parameters become `$n`. Every
call takes a connection from the pool, so unrelated statements run side by side; `transaction()` holds one
connection from `BEGIN` to `COMMIT` (READ COMMITTED: each statement sees what others committed before it).
asyncpg has no type information: this module is the only one that touches it, and gives typed results back.

Errors leave as `bot.store.errors` types: `IntegrityViolation` for a refused write, `DatabaseUnavailable` when
the server cannot be reached, `DatabaseError` otherwise. None of them carries the URL's password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from bot.store.dburl import MASK, mask_url, url_passwords
from bot.store.errors import DatabaseError, DatabaseUnavailable, IntegrityViolation
from bot.store.rows import Row
from bot.store.sql import numbered

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0

_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)  # fmt: skip


def _translated(exc: BaseException, url: str) -> DatabaseError | None:
    """The store's error for a driver's error, or None if it is not one."""
    said = _message(exc, url)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(f"the database refused the write: {said}")
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return DatabaseError(f"PostgreSQL at {mask_url(url)} refused the login: {said}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseError(f"PostgreSQL at {mask_url(url)}: {said}; create it first (createdb)")
    if isinstance(exc, ValueError):  # the driver's own: a malformed URL, or a value of the wrong type for a column
        return DatabaseError(f"PostgreSQL at {mask_url(url)} cannot be used: {said}")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"PostgreSQL at {mask_url(url)} cannot be reached: {said}")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(f"the database refused a statement: {said}")
    return None


def _message(exc: BaseException, url: str) -> str:
    """The driver's message on one bounded line, without the URL's password should it quote it."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    for password in url_passwords(url):
        text = text.replace(password, MASK)
    return text


async def _guarded(url: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except Exception as exc:
        translated = _translated(exc, url)
        if translated is None:
            raise
        raise translated from None


class PgConnection:
    """One connection, inside `PostgresDatabase.transaction()` (or borrowed for a single statement)."""

    def __init__(self, connection: Any, url: str) -> None:
        self._connection = connection
        self._url = url

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        text, values = numbered(sql, parameters)
        rows: list[Row] = await _guarded(self._url, self._connection.fetch(text, *values))
        return rows

    async def fetchone(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, parameters)
        return rows[0] if rows else None

    async def script(self, sql: str) -> None:
        """Run statements with no parameters (schema changes), several at once."""
        await _guarded(self._url, self._connection.execute(sql))

    async def copy_records(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        """Insert many rows at once through COPY."""
        await _guarded(self._url, self._connection.copy_records_to_table(table, columns=list(columns),
                                                                          records=records))  # fmt: skip


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database. Create with `await PostgresDatabase.connect(url)`."""

    def __init__(self, pool: Any, url: str) -> None:
        self._pool = pool
        self._url = url

    def __repr__(self) -> str:
        return f"PostgresDatabase({mask_url(self._url)!r})"

    @property
    def url(self) -> str:
        return self._url

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 10, wait: float = CONNECT_TIMEOUT) -> PostgresDatabase:
        """Open the pool (one connection at first, waiting `wait` s at most); raises `DatabaseError` saying why not."""
        opening = asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=wait, command_timeout=COMMAND_TIMEOUT)
        pool = await _guarded(url, opening)
        return cls(pool, url)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), timeout=10)
        self._pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PgConnection]:
        """A connection of the pool, outside any transaction (each statement commits on its own)."""
        acquired = await _guarded(self._url, self._pool.acquire())
        try:
            yield PgConnection(acquired, self._url)
        finally:
            await self._pool.release(acquired)

    async def fetchall(self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()) -> list[Row]:
        async with self.connection() as connection:
            return await connection.fetchall(sql, parameters)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:
        """`BEGIN` … `COMMIT` on one connection, or `ROLLBACK` if the block raises."""
        async with self.connection() as connection:
            raw = connection._connection
            transaction = raw.transaction()
            await _guarded(self._url, transaction.start())
            try:
                yield connection
            except BaseException:
                # Shielded: a cancelled task must still end its transaction before the connection goes back.
                with contextlib.suppress(Exception):
                    await asyncio.shield(transaction.rollback())
                raise
            await _guarded(self._url, transaction.commit())

    async def listen(
        self, channel: str, receive: Callable[[str], Coroutine[Any, Any, None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `receive(payload)` for every NOTIFY on `channel`, on a connection of its own (outside the pool);
        returns what stops listening. Payloads are cut to 200 characters."""
        connection = await _guarded(self._url, asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT))
        tasks: set[asyncio.Task[None]] = set()

        def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            task = asyncio.create_task(receive(payload[:200]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await _guarded(self._url, connection.add_listener(channel, notified))

        async def stop() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=10)
            connection.terminate()

        return stop
