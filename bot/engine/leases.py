"""Keeps this process's lease on a shared database and takes over the jobs of processes that stopped.

Every `lease / 4` seconds the heartbeat is renewed and the jobs of processes whose lease expired are claimed (see
`bot.store.leases`) and followed here: polling, delivery through Discord's REST API, settling, with the same
guarantees as after a restart (a job with a request id is never submitted again; charging happens once; a set is
read back before a part is posted again).

A process that could not renew its heartbeat for three quarters of the lease stops following its jobs, since
another process may take them over at the full lease; once it can renew again it follows the jobs still its own.

A Cancel click may reach any process (it arrives on the shard of the member's server). That process cancels the job
at RunComfy and in the database, then tells the owner (`CancelSignal`: LISTEN/NOTIFY on PostgreSQL), whose task
stops at once, or at its next look at the job without the signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from bot.background import stop_task
from bot.engine.tracker import Tracker
from bot.store.leases import Leases

log = logging.getLogger(__name__)

FENCE_FRACTION = 0.75  # of the lease: past this without a renewed heartbeat, stop following
RENEWALS_PER_LEASE = 4


class CancelSignal(Protocol):
    """How processes tell each other that a job was cancelled."""

    async def publish(self, job_id: str) -> None: ...

    async def subscribe(self, receive: Callable[[str], Coroutine[Any, Any, None]]) -> None: ...

    async def close(self) -> None: ...


class LeaseKeeper:
    def __init__(
        self,
        leases: Leases,
        tracker: Tracker,
        *,
        lease: float,
        signal: CancelSignal | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.tracker = tracker
        tracker.shared = True
        self.lease = lease
        self.signal = signal
        self._clock = clock
        self._renewed_at = clock()
        self._fenced = False
        self._task: asyncio.Task[None] | None = None
        self._shards = ""
        self.taken_over = 0

    @property
    def interval(self) -> float:
        return self.lease / RENEWALS_PER_LEASE

    async def register(self, shards: str) -> None:
        """Join: a row with this process's heartbeat; jobs submitted from now on are owned by it."""
        self._shards = shards
        await self.leases.register(host=socket.gethostname(), pid=os.getpid(), shards=shards)
        self.leases.storage.owner = self.leases.process_id
        self._renewed_at = self._clock()
        if self.signal is not None:
            await self.signal.subscribe(self._cancelled_elsewhere)
        log.info("process %s joined (shards %s, lease %.0f s)", self.leases.process_id, shards, self.lease)

    def start(self) -> None:
        """Take over what is waiting, then keep renewing and taking over (call once, when ready)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def tick(self) -> None:
        """One heartbeat: renew, stop following if the lease may be lost, take over expired processes' jobs."""
        try:
            renewed = await self.leases.renew()
            if not renewed:  # the row was removed (a release, or an operator): join again with the same id
                await self.leases.register(host=socket.gethostname(), pid=os.getpid(), shards=self._shards)
        except Exception as exc:
            silent_for = self._clock() - self._renewed_at
            log.warning("could not renew this process's lease (%s); %.0f s since the last renewal", exc, silent_for)
            if silent_for > self.lease * FENCE_FRACTION and not self._fenced:
                log.error("lease about to expire: no longer following this process's jobs until it is renewed")
                self._fenced = True
                await self.tracker.stop_following()
            return
        self._renewed_at = self._clock()
        if self._fenced:
            self._fenced = False
            await self.tracker.adopt(await self.leases.owned())
        claimed = await self.leases.claim(self.lease)
        if claimed:
            self.taken_over += await self.tracker.adopt(claimed)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("taking over jobs failed; trying again at the next heartbeat")
            await asyncio.sleep(self.interval)

    async def cancelled(self, job_id: str) -> None:
        """This process cancelled `job_id`: tell its owner, if that is another process."""
        if self.signal is None:
            return
        try:
            await self.signal.publish(job_id)
        except Exception as exc:  # the owner notices at its next look at the job
            log.warning("could not signal the cancel of job %s to its process: %s", job_id, exc)

    async def _cancelled_elsewhere(self, job_id: str) -> None:
        if self.tracker.following(job_id):
            log.info("job %s was cancelled through another process; no longer following it", job_id)
            await self.tracker.stop_following([job_id])

    async def close(self) -> None:
        """Stop renewing and leave (call after the tracker closed): the others take over the unfinished jobs."""
        task, self._task = self._task, None
        await stop_task(task)
        if self.signal is not None:
            await self.signal.close()
        try:
            await self.leases.release()
        except Exception as exc:
            log.warning("could not leave the database cleanly (%s): the others take over after the lease", exc)
