"""Every write of a job's state, in one module: the pending insert, the submit, each move and the end.

Each write checks its move with `bot.domain.job_state` and is a single compare-and-set statement
(`... WHERE state = <the state we checked>`), which stays correct when another task or process changes
the same job at the same moment. Nothing else in the bot writes the `state` column (a test checks it).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain.job import JOB_COLUMNS, Job, new_job_id
from bot.domain.job_state import IllegalTransition, JobState, can_transition, check_transition
from bot.store.errors import INTEGRITY_ERRORS, JobNotFound, StorageError
from bot.store.transaction import Transaction

if TYPE_CHECKING:
    from bot.store.database import Storage

_INSERT_PENDING_SQL = f"""INSERT INTO jobs (id, guild_id, channel_id, user_id, options, state, images_reserved,
                                            created_at, updated_at, price_micros)
                          VALUES (?, ?, ?, ?, ?, '{JobState.PENDING}', ?, ?, ?, ?) RETURNING {JOB_COLUMNS}"""
_INSERT_PENDING_BARE_SQL = _INSERT_PENDING_SQL.split(" RETURNING ")[0]


@dataclass(frozen=True)
class NewJob:
    """A job about to be reserved: whose it is, where it was asked, and what it holds."""

    guild_id: int
    channel_id: int
    user_id: int
    options_json: str
    images: int
    price_micros: int | None = None

    def row(self, job_id: str, now: float) -> tuple[object, ...]:
        """The values of `_INSERT_PENDING_SQL`."""
        return (
            job_id, self.guild_id, self.channel_id, self.user_id, self.options_json, self.images,
            now, now, self.price_micros,
        )  # fmt: skip

    def inserted(self, job_id: str, now: float) -> Job:
        """The job as `_INSERT_PENDING_SQL` stores it (every other column at its default; a test compares)."""
        return Job(
            job_id, self.guild_id, self.channel_id, self.user_id, json.loads(self.options_json), None,
            JobState.PENDING, None, self.images, 0, 0, False, None, None, None, None, None, None, now, now, None, None,
            price_micros=self.price_micros,
        )  # fmt: skip


def insert_pending_job(connection: sqlite3.Connection, job: NewJob, now: float) -> Job:
    """Insert a pending job holding its reserved images (quoted at its price each), off the event loop.

    Without RETURNING: building the job from what was inserted costs a fraction of reading the row back, and
    this runs for every reservation, inside the batch every other reservation waits on.
    """
    while True:
        job_id = new_job_id()
        try:
            connection.execute(_INSERT_PENDING_BARE_SQL, job.row(job_id, now))
        except sqlite3.IntegrityError as exc:
            if "jobs.id" not in str(exc):
                raise
            continue
        return job.inserted(job_id, now)


_INSERT_PENDING_ONCE_SQL = _INSERT_PENDING_SQL.replace("RETURNING", "ON CONFLICT (id) DO NOTHING RETURNING")


async def insert_pending(tx: Transaction, job: NewJob, now: float) -> Job:
    """`insert_pending_job` inside an open transaction, on either database.

    An id already taken inserts nothing (rather than failing, which would end a PostgreSQL transaction): another
    id is drawn.
    """
    while True:
        row = await tx.fetchone(_INSERT_PENDING_ONCE_SQL, job.row(new_job_id(), now))
        if row is not None:
            return Job.from_row(row)


async def _job_or_raise(storage: Storage, job_id: str) -> Job:
    job = await storage.get_job(job_id)
    if job is None:
        raise JobNotFound(f"No job has the id {job_id!r}.")
    return job


async def mark_submitting(storage: Storage, job_id: str) -> Job:
    """Record, in its own commit, that the submit request of a pending job is about to be sent.

    The job becomes this process's (`storage.owner`), unless another process took it over meanwhile: then it is
    not sent (see `bot.store.leases`)."""
    rows = await storage.write(
        f"""UPDATE jobs SET submitted_at = :now, updated_at = :now, owner = coalesce(owner, CAST(:owner AS TEXT))
            WHERE id = :id AND state = '{JobState.PENDING}'
              AND (CAST(:owner AS TEXT) IS NULL OR owner IS NULL OR owner = CAST(:owner AS TEXT))
            RETURNING {JOB_COLUMNS}""",
        {"now": storage.clock(), "id": job_id, "owner": storage.owner},
    )
    if rows:
        return Job.from_row(rows[0])
    job = await _job_or_raise(storage, job_id)
    raise IllegalTransition(job.state, JobState.SUBMITTED)


async def set_request_id(storage: Storage, job_id: str, request_id: str) -> Job:
    """Record RunComfy's request id and move the job from pending to submitted."""
    if not request_id:
        raise ValueError("request_id must not be empty")
    try:
        rows = await storage.write(
            f"""UPDATE jobs SET request_id = ?, state = '{JobState.SUBMITTED}', updated_at = ?
                WHERE id = ? AND state = '{JobState.PENDING}' RETURNING {JOB_COLUMNS}""",
            (request_id, storage.clock(), job_id),
        )
    except INTEGRITY_ERRORS:
        raise StorageError(f"The request id {request_id!r} already belongs to another job.") from None
    if rows:
        return Job.from_row(rows[0])
    job = await _job_or_raise(storage, job_id)
    if job.request_id == request_id:
        return job  # recorded already: a retry after a lost answer
    raise IllegalTransition(job.state, JobState.SUBMITTED)


async def transition(
    storage: Storage, job_id: str, new: JobState, *, queue_position: int | None = None, error: str | None = None
) -> Job:
    """Move a job to a non-terminal state (or stay, to update its queue position).

    Terminal states settle the quota: use `finish_job` for them.
    """
    new = JobState(new)
    if new.terminal:
        raise ValueError(f"{new.value} is a final state: use finish_job, which also settles the quota")
    if queue_position is not None and queue_position < 0:
        raise ValueError("queue_position must be >= 0")
    while True:
        job = await _job_or_raise(storage, job_id)
        check_transition(job.state, new)
        if job.state == new and queue_position in (None, job.queue_position) and error in (None, job.error):
            return job
        moved = await _move(storage, job, new, queue_position, error)
        if moved is not None:
            return moved
        # Another task or process moved the job meanwhile: check again from its new state.


async def try_transition(storage: Storage, job: Job, new: JobState, *, queue_position: int | None = None) -> Job | None:
    """`transition` from the state the caller last saw `job` in, in one statement and without reading it first.

    None if the job is no longer in `job.state` (another task or process moved it), or cannot go from there to
    `new`: nothing was written, and the caller reads the job to decide.
    """
    new = JobState(new)
    if new.terminal or not can_transition(job.state, new):
        return None
    if queue_position is not None and queue_position < 0:
        raise ValueError("queue_position must be >= 0")
    return await _move(storage, job, new, queue_position, None)


async def _move(
    storage: Storage, job: Job, new: JobState, queue_position: int | None, error: str | None
) -> Job | None:
    """The compare-and-set of a move: the job as moved, or None if it was not in `job.state` any more."""
    position = queue_position
    if position is None and new in (JobState.SUBMITTED, JobState.QUEUED):
        position = job.queue_position
    now = storage.clock()
    rows = await storage.write(
        f"""UPDATE jobs SET state = :new, queue_position = :position, error = coalesce(:error, error),
                updated_at = :now,
                started_at = CASE WHEN :new = '{JobState.RUNNING}' AND started_at IS NULL
                                  THEN :now ELSE started_at END
            WHERE id = :id AND state = :old RETURNING {JOB_COLUMNS}""",
        {"new": new.value, "position": position, "error": error, "now": now, "id": job.id, "old": job.state},
    )
    return Job.from_row(rows[0]) if rows else None


async def finish_job(
    storage: Storage,
    job_id: str,
    final: JobState,
    *,
    images_delivered: int = 0,
    error: str | None = None,
    seen: Job | None = None,
    cost_micros: int | None = None,
) -> Job:
    """End a job and settle its quota in one statement: charge what was delivered, give back the rest.

    Only a delivered job is charged (at most what it reserved). Exactly once: on a job already settled
    this changes nothing and returns it as it is. `cost_micros` is what RunComfy says the job cost, kept with
    it; a job whose cost RunComfy did not give gets an estimate, marked as one: images posted x its quoted
    price; for an unknown outcome, the images asked (it may have been billed).

    `seen` is the job as the caller last saw it: the update is tried from its state without reading the job
    first, and the job is read only if it has moved on since.
    """
    final = JobState(final)
    if not final.terminal:
        raise ValueError(f"{final.value} is not a final state: use transition")
    if images_delivered < 0 or (cost_micros is not None and cost_micros < 0):
        raise ValueError("images_delivered and cost_micros must be >= 0")
    job = seen if seen is not None and seen.id == job_id and not seen.settled else None
    while True:
        if job is None or not can_transition(job.state, final):
            job = await _job_or_raise(storage, job_id)
        if job.settled:
            return job
        check_transition(job.state, final)
        charged = min(images_delivered, job.images_reserved) if final is JobState.DELIVERED else 0
        billable = job.images_reserved if final is JobState.UNKNOWN else charged
        now = storage.clock()
        rows = await storage.write(
            f"""UPDATE jobs SET state = :final, images_delivered = :delivered, images_charged = :charged,
                    settled = 1, queue_position = NULL, error = coalesce(:error, error),
                    updated_at = :now, finished_at = :now,
                    cost_micros = coalesce(CAST(:cost AS BIGINT), cost_micros, :billable * price_micros),
                    cost_estimated = CASE WHEN coalesce(CAST(:cost AS BIGINT), cost_micros) IS NULL THEN 1 ELSE 0 END
                WHERE id = :id AND state = :old AND settled = 0 RETURNING {JOB_COLUMNS}""",
            {
                "final": final.value,
                "delivered": images_delivered,
                "charged": charged,
                "billable": billable,
                "cost": cost_micros,
                "error": error,
                "now": now,
                "id": job_id,
                "old": job.state,
            },
        )
        if rows:
            return Job.from_row(rows[0])
        job = None  # moved on meanwhile (another task or process): read it and decide again
