"""What a Cancel click does to one job: ask RunComfy to cancel it, and record what RunComfy answered.

Only a job still queued at RunComfy can be cancelled. The caller (`Tracker.cancel`) holds the job's lock, stops
its task and tells the status message.
"""

from __future__ import annotations

import logging

from bot.domain.job_state import JobState
from bot.engine.outcomes import CancelReply
from bot.logging_setup import for_job
from bot.runcomfy.client import CancelOutcome, RemoteState, RunComfyClient, RunComfyError
from bot.store.database import Job, Storage

log = logging.getLogger(__name__)


async def cancel_job(storage: Storage, runcomfy: RunComfyClient, job_id: str) -> tuple[CancelReply, Job | None]:
    """The reply for the member, and the job as it is now if it changed (None: nothing to show again)."""
    job = await storage.get_job(job_id)
    if job is None:
        return CancelReply.UNKNOWN_JOB, None
    if job.state.terminal:
        return CancelReply.FINISHED, None
    if job.request_id is None:
        return CancelReply.NOT_SUBMITTED_YET, None
    if not job.state.cancellable:
        return CancelReply.NOT_CANCELLABLE, None
    try:
        answer = await runcomfy.cancel(job.request_id)
    except RunComfyError as exc:
        for_job(log, job).warning("cancel failed: %s", type(exc).__name__)
        return CancelReply.UNAVAILABLE, None
    if answer.outcome is CancelOutcome.CANCELLED:
        return CancelReply.CANCELLED, await storage.finish_job(job.id, JobState.CANCELLED, seen=job)
    if answer.state is RemoteState.QUEUED:
        return CancelReply.REFUSED, job
    if answer.state is RemoteState.RUNNING and job.state is not JobState.RUNNING:
        job = await storage.transition(job.id, JobState.RUNNING)
    return CancelReply.NOT_CANCELLABLE, job
