"""Group commit: operations queued at the same moment run one after another in one transaction.

Under a burst (many members pressing /imagine at once) each reservation would otherwise pay for
its own `BEGIN IMMEDIATE` and `COMMIT`; run together they pay once. Each operation still sees the
writes of those before it (same transaction), so checks stay exact, and nothing is visible to
anyone before the single commit. With no burst a batch holds one operation: nothing changes.

An operation may raise one of its `clean` exceptions (a refusal) only before it writes anything.
Any other exception rolls the whole batch back: that operation fails, the others run again in a
later batch, so operations must be safe to run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.storage import Storage, Transaction

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Queued(Generic[T]):
    operation: Callable[[Transaction], Awaitable[T]]
    clean: tuple[type[BaseException], ...]
    on_abandoned: Callable[[T], Awaitable[None]] | None
    future: asyncio.Future[T]


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
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(operation, clean, on_abandoned, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            try:
                await self._run_batch(batch)
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
                        outcomes.append((item, True, await item.operation(tx)))
                    except item.clean as refusal:
                        outcomes.append((item, False, refusal))
                    except Exception as error:
                        raise _BatchAborted(item, error) from error
        except _BatchAborted as aborted:
            _fail(aborted.item, aborted.error)
            self._queue.extendleft(reversed([item for item in batch if item is not aborted.item]))
            return
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
