"""Leases: which running process follows which job, when several share one PostgreSQL database.

Each process has a row in `processes` whose `heartbeat_at` it renews; a job's `owner` names the process following
it. A process whose heartbeat is older than the lease is taken for dead: its unfinished jobs are claimed by another
one. Claiming is one statement; on PostgreSQL its rows are picked `FOR UPDATE SKIP LOCKED`, so processes claiming at
the same moment share the jobs out instead of waiting on each other, and each job goes to exactly one of them.

A job takes its owner when its submit is recorded (`mark_submitting`, from `Storage.owner`); a job no process has
taken yet is left alone until it is older than the lease (its process may be about to submit it). With SQLite
one process holds the database (`bot.store.lock`), so none of this runs there.

Times are the processes' own clocks (unix seconds): hosts sharing a database are expected to keep time (NTP), to
well within the lease.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.domain.job import JOB_COLUMNS, Job
from bot.store.database import Storage
from bot.store.migrations import UNFINISHED_SQL

CLAIM_BATCH = 100  # jobs claimed by one statement; the next heartbeat claims more
CANCEL_CHANNEL = "seedream_job_cancelled"  # NOTIFY channel: a job id, cancelled by some process


@dataclass(frozen=True)
class ProcessRow:
    id: str
    host: str
    pid: int
    shards: str
    started_at: float
    heartbeat_at: float


def new_process_id() -> str:
    return secrets.token_hex(8)


class Leases:
    """The lease of one process (`process_id`) on a shared database."""

    def __init__(self, storage: Storage, process_id: str | None = None) -> None:
        self.storage = storage
        self.process_id = process_id or new_process_id()

    async def register(self, *, host: str, pid: int, shards: str) -> None:
        now = self.storage.clock()
        await self.storage.write(
            "INSERT INTO processes (id, host, pid, shards, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
            (self.process_id, host, pid, shards, now, now),
        )

    async def renew(self) -> bool:
        """Refresh the heartbeat; False if this process's row is gone (it was released)."""
        rows = await self.storage.write(
            "UPDATE processes SET heartbeat_at = ? WHERE id = ? RETURNING id", (self.storage.clock(), self.process_id)
        )
        return bool(rows)

    async def release(self) -> None:
        """Leave: the jobs this process still owns can be claimed by the others at once."""
        await self.storage.write("DELETE FROM processes WHERE id = ?", (self.process_id,))

    async def claim(self, lease: float, *, limit: int = CLAIM_BATCH) -> list[Job]:
        """Take over the unfinished jobs of processes whose heartbeat is older than `lease` seconds (or that left),
        oldest first; return them, now owned by this process."""
        cutoff = self.storage.clock() - lease
        # The owner's heartbeat is read in a scalar subquery, not NOT EXISTS: PostgreSQL turns NOT EXISTS into an
        # anti-join, and when it rechecks a row another process took over meanwhile, it does not look again at
        # the new owner's heartbeat, so two processes could take the same job.
        lock = " FOR UPDATE OF j SKIP LOCKED" if self.storage.dialect == "postgresql" else ""
        rows = await self.storage.write(
            f"""UPDATE jobs SET owner = :me
                WHERE id IN (
                    SELECT j.id FROM jobs j
                    WHERE j.{UNFINISHED_SQL}
                      AND (j.owner IS NULL OR j.owner <> :me)
                      AND (j.owner IS NOT NULL OR j.created_at < :cutoff)
                      AND NOT coalesce((SELECT p.heartbeat_at >= :cutoff FROM processes p WHERE p.id = j.owner), FALSE)
                    ORDER BY j.created_at LIMIT :limit{lock}
                )
                RETURNING {JOB_COLUMNS}""",
            {"me": self.process_id, "cutoff": cutoff, "limit": limit},
        )
        return sorted((Job.from_row(row) for row in rows), key=lambda job: job.created_at)

    async def owned(self) -> list[Job]:
        """The unfinished jobs this process owns."""
        rows = await self.storage.fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ? AND {UNFINISHED_SQL} ORDER BY created_at",
            (self.process_id,),
        )
        return [Job.from_row(row) for row in rows]

    async def owner_of(self, job_id: str) -> str | None:
        rows = await self.storage.fetchall("SELECT owner FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    async def processes(self) -> list[ProcessRow]:
        rows = await self.storage.fetchall(
            "SELECT id, host, pid, shards, started_at, heartbeat_at FROM processes ORDER BY started_at"
        )
        return [ProcessRow(*row) for row in rows]


class DatabaseCancelSignal:
    """Cancels told between processes with PostgreSQL's LISTEN/NOTIFY (see `bot.engine.leases.CancelSignal`)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._stop: Callable[[], Awaitable[None]] | None = None

    async def publish(self, job_id: str) -> None:
        await self.storage.write("SELECT pg_notify(?, ?)", (CANCEL_CHANNEL, job_id))

    async def subscribe(self, receive: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._stop = await self.storage.postgres.listen(CANCEL_CHANNEL, receive)

    async def close(self) -> None:
        if self._stop is not None:
            await self._stop()
            self._stop = None
