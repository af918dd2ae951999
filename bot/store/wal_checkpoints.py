"""Checkpoints of the SQLite write-ahead log, done beside the bot's writes instead of inside them.

SQLite copies the log back into the database file once it holds 1,000 pages, in the commit that crossed the
line: that commit then waits for the copy and its fsync. With reservations batched (`bot.store.group_commit`),
every command in that batch waited too: in `bench/quota.py` one batch in about forty took 7-10 ms longer,
which set the p99 at 100 members. Here the bot's connection checkpoints only as a safety net (`SAFETY_PAGES`),
and a connection of its own copies the log every `INTERVAL` seconds on a worker thread, in PASSIVE mode, which
never waits for and never blocks the writer.

The log starts over from its beginning only when a write finds it fully copied. Under writes with no pause
between them (`bench/quota.py`) that never happens, and the commit that takes the log past `SAFETY_PAGES`
checkpoints after all: one commit in about 20,000 pages of writes waited 50-105 ms there. Real traffic pauses.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from bot.background import stop_task

log = logging.getLogger(__name__)

INTERVAL = 1.0
SAFETY_PAGES = 20_000  # ~80 MB of log: a commit copies only past this (the checkpointer stopped, or no pause)


class WalCheckpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every `interval` seconds."""

    def __init__(self, path: Path, *, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._connection: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[None] | None = None  # the checkpoint running on a worker thread, if any
        self.checkpoints = 0  # checkpoints that copied something

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wal-checkpoints")

    async def stop(self) -> None:
        """Stop, and close the connection once no checkpoint runs on it (a thread cannot be cancelled midway)."""
        task, self._task = self._task, None
        await stop_task(task)
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)
            self._in_flight = None
        if self._connection is not None:
            await asyncio.to_thread(self._connection.close)
            self._connection = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._checkpoint))
            try:
                await asyncio.shield(self._in_flight)
            except sqlite3.Error as exc:  # a busy or full disk, say: the next round tries again
                log.warning("could not checkpoint the database log: %s", exc)
            self._in_flight = None

    def _checkpoint(self) -> None:
        if self._connection is None:
            # One call at a time (awaited), possibly on different worker threads.
            self._connection = sqlite3.connect(self._path, timeout=0, check_same_thread=False, isolation_level=None)
        _busy, _log_pages, copied = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if copied > 0:
            self.checkpoints += 1
