"""Group commit: operations queued at the same moment run one after another in one transaction.

Under a burst (many members pressing /imagine at once) each reservation would otherwise pay for
its own `BEGIN IMMEDIATE` and `COMMIT`; run together they pay once. Each operation still sees the
writes of those before it (same transaction), so checks stay exact, and nothing is visible to
anyone before the single commit. With no burst a batch holds one operation: nothing changes.

An operation may raise one of its `clean` exceptions (a refusal) only before it writes anything.
Any other exception rolls the whole batch back: that operation fails, the others run again in a
later batch, so operations must be safe to run again.

Operations come in two kinds. `run` takes an async operation on a `Transaction`: each of its
statements is one hand-over between the event loop and the database thread. `run_sync` takes a
blocking operation on the `sqlite3.Connection`: a whole batch of them runs on the database thread in
one hand-over (`Storage.run_transaction`), which is what keeps a burst's latency low on a busy machine.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from bot.store.database import Storage
from bot.store.transaction import Transaction

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Queued(Generic[T]):
    operation: Callable[[Transaction], Awaitable[T]] | Callable[[sqlite3.Connection], T]
    clean: tuple[type[BaseException], ...]
    on_abandoned: Callable[[T], Awaitable[None]] | None
    future: asyncio.Future[T]
    blocking: bool = False


class _BatchAborted(Exception):
    def __init__(self, item: _Queued[Any], error: BaseException) -> None:
        super().__init__(str(error))
        self.item = item
        self.error = error


class GroupCommit:
    def __init__(self, storage: Storage, *, max_batch: int = 128) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be 1 or more")
        self._storage = storage
        self._max_batch = max_batch
        self._queue: deque[_Queued[Any]] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def run(
        self,
        operation: Callable[[Transaction], Awaitable[T]],
        *,
        clean: tuple[type[BaseException], ...] = (),
        on_abandoned: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """Run `operation` in the next batch's transaction; its result once committed.

        `on_abandoned(result)` runs after the commit if the caller was cancelled meanwhile, to undo its effect.
        """
        return await self._enqueue(_Queued(operation, clean, on_abandoned, self._future()))

    async def run_sync(
        self,
        operation: Callable[[sqlite3.Connection], T],
        *,
        clean: tuple[type[BaseException], ...] = (),
        on_abandoned: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """As `run`, for a blocking `operation(connection)`, run on the database thread with the rest of its batch."""
        return await self._enqueue(_Queued(operation, clean, on_abandoned, self._future(), blocking=True))

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, item: _Queued[T]) -> T:
        self._queue.append(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="group-commit")
        return await item.future

    def _next_batch(self) -> list[_Queued[Any]]:
        """Up to `max_batch` queued operations of the same kind, in order."""
        blocking = self._queue[0].blocking
        batch: list[_Queued[Any]] = []
        while self._queue and len(batch) < self._max_batch and self._queue[0].blocking == blocking:
            batch.append(self._queue.popleft())
        return batch

    async def _drain(self) -> None:
        while self._queue:
            batch = self._next_batch()
            try:
                await (self._run_blocking_batch(batch) if batch[0].blocking else self._run_batch(batch))
            except BaseException as exc:
                for item in batch:
                    _fail(item, exc)
                if isinstance(exc, asyncio.CancelledError):
                    for item in self._queue:
                        _fail(item, exc)
                    self._queue.clear()
                    raise

    async def _run_batch(self, batch: list[_Queued[Any]]) -> None:
        if all(item.future.done() for item in batch):
            return
        outcomes: list[tuple[_Queued[Any], bool, Any]] = []
        try:
            async with self._storage.transaction() as tx:
                for item in batch:
                    if item.future.done():
                        continue  # the caller left while the batch waited for the write lock
                    try:
                        operation = cast(Callable[[Transaction], Awaitable[Any]], item.operation)
                        outcomes.append((item, True, await operation(tx)))
                    except item.clean as refusal:
                        outcomes.append((item, False, refusal))
                    except Exception as error:
                        raise _BatchAborted(item, error) from error
        except _BatchAborted as aborted:
            self._aborted(batch, aborted)
            return
        await self._settle(outcomes)

    async def _run_blocking_batch(self, batch: list[_Queued[Any]]) -> None:
        live = [item for item in batch if not item.future.done()]
        if not live:
            return

        def run_all(connection: sqlite3.Connection) -> list[tuple[_Queued[Any], bool, Any]]:
            outcomes = []
            for item in live:
                try:
                    outcomes.append((item, True, cast(Callable[[sqlite3.Connection], Any], item.operation)(connection)))
                except item.clean as refusal:
                    outcomes.append((item, False, refusal))
                except Exception as error:
                    raise _BatchAborted(item, error) from error
            return outcomes

        try:
            outcomes = await self._storage.run_transaction(run_all)
        except _BatchAborted as aborted:
            self._aborted(batch, aborted)
            return
        await self._settle(outcomes)

    def _aborted(self, batch: list[_Queued[Any]], aborted: _BatchAborted) -> None:
        _fail(aborted.item, aborted.error)
        self._queue.extendleft(reversed([item for item in batch if item is not aborted.item]))

    async def _settle(self, outcomes: list[tuple[_Queued[Any], bool, Any]]) -> None:
        abandoned = []
        for item, succeeded, value in outcomes:
            if item.future.done():
                if succeeded and item.on_abandoned is not None:
                    abandoned.append((item.on_abandoned, value))
            elif succeeded:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)
        for undo, value in abandoned:
            try:
                await undo(value)
            except Exception:
                log.exception("could not undo an operation whose caller was cancelled")


def _fail(item: _Queued[Any], error: BaseException) -> None:
    if item.future.done():
        return
    if isinstance(error, asyncio.CancelledError):
        item.future.cancel()
    else:
        item.future.set_exception(error)
