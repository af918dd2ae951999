"""Follows every unfinished job from submission to delivery, and resumes them after a restart.

One task per job polls RunComfy (adaptively: slowly while a job waits far back in the queue,
quickly once it is likely to finish), moves the job through its states in the database, tells the
observer (the Discord side) about every change, and delivers the images when the job completes.
All state changes of one job go through one lock, so a Cancel click and the poller never race.
A job that has a request_id is never submitted again; charging happens once, in `finish_job`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.delivery import DeliveryPlan, PreparedImage, download_images, plan_delivery
from bot.jobstate import JobState
from bot.runcomfy import (
    CancelOutcome,
    JobStatus,
    NotFoundError,
    RemoteState,
    RunComfyClient,
    RunComfyError,
)
from bot.storage import Job, Storage

log = logging.getLogger(__name__)

# Seedream makes about one 2K image every 2 s; standard mode spends longer on the prompt first.
SECONDS_PER_IMAGE = 2.0
STANDARD_MODE_EXTRA = 5.0
POST_ATTEMPTS = 5
RESTART_MESSAGE = "the bot restarted while sending this job and RunComfy never confirmed it, so it was not sent again"


class JobObserver(Protocol):
    """The Discord side: shows a job's status and posts its images."""

    async def job_changed(self, job: Job) -> None: ...

    async def post_images(self, job: Job, batch: Sequence[PreparedImage], part: int, parts: int) -> str | None:
        """Post one message of images; return its jump URL."""
        ...

    async def delivery_finished(self, job: Job, plan: DeliveryPlan, gallery_url: str | None) -> None: ...

    def upload_limit(self, job: Job) -> int: ...


class _PostingFailed(Exception):
    pass


class CancelReply(enum.Enum):
    CANCELLED = "cancelled"
    NOT_CANCELLABLE = "not_cancellable"  # already generating
    FINISHED = "finished"
    NOT_SUBMITTED_YET = "not_submitted_yet"
    UNKNOWN_JOB = "unknown_job"
    UNAVAILABLE = "unavailable"  # RunComfy could not be reached


@dataclass(frozen=True)
class TrackerConfig:
    workdir: Path
    poll_interval: float = 1.0
    poll_max_interval: float = 10.0
    job_deadline: float = 1800.0
    download_max_bytes: int = 40 * 1024 * 1024
    download_concurrency: int = 4

    @classmethod
    def from_settings(cls, settings, workdir: Path) -> TrackerConfig:
        return cls(
            workdir=workdir,
            poll_interval=settings.poll_interval_seconds,
            poll_max_interval=settings.poll_max_interval_seconds,
            job_deadline=settings.job_deadline_seconds,
            download_max_bytes=settings.download_max_bytes,
            download_concurrency=settings.download_concurrency,
        )


_REMOTE_TO_LOCAL = {RemoteState.QUEUED: JobState.QUEUED, RemoteState.RUNNING: JobState.RUNNING}


class Tracker:
    def __init__(
        self,
        storage: Storage,
        runcomfy: RunComfyClient,
        observer: JobObserver,
        config: TrackerConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._runcomfy = runcomfy
        self._observer = observer
        self._config = config
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    # ---- lifecycle -------------------------------------------------------------------------

    async def resume(self) -> int:
        """Pick up every unfinished job from the database; returns how many are followed."""
        resumed = 0
        for job in await self._storage.unfinished_jobs():
            if job.request_id is None:
                # Still pending: the previous run died before RunComfy confirmed the submission.
                job = await self._finish(job, JobState.FAILED, error=RESTART_MESSAGE)
                continue
            self.follow(job)
            resumed += 1
        log.info("resumed %d unfinished job(s)", resumed)
        return resumed

    def follow(self, job: Job) -> None:
        if self._closing or job.id in self._tasks or job.state.terminal:
            return
        task = asyncio.create_task(self._supervise(job.id), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _t, job_id=job.id: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        lock = self._locks.get(job_id)
        if lock is not None and not lock.locked():
            self._locks.pop(job_id, None)

    async def close(self) -> None:
        """Stop following (the jobs stay unfinished in the database and resume at the next start)."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- following one job -------------------------------------------------------------------

    async def _supervise(self, job_id: str) -> None:
        pause = self._config.poll_interval
        while True:
            try:
                await self._follow(job_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s: unexpected error while following it; retrying in %.0f s", job_id, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)

    async def _follow(self, job_id: str) -> None:
        transient_failures = 0
        while True:
            job = await self._storage.get_job(job_id)
            if job is None or job.state.terminal:
                return
            if job.state is JobState.DELIVERING:
                await self._deliver(job)
                return
            if self._clock() - job.created_at > self._config.job_deadline:
                minutes = round(self._config.job_deadline / 60)
                await self._end(job, JobState.FAILED, f"RunComfy did not finish it within {minutes} minutes")
                return
            try:
                status = await self._runcomfy.status(job.request_id)
            except NotFoundError:
                await self._end(job, JobState.EXPIRED, "RunComfy no longer knows this job (it expired)")
                return
            except RunComfyError as exc:
                # The client already retried; keep the job and try again later, up to the deadline.
                transient_failures += 1
                log.warning("job %s: status check failed (%s); will retry", job.id, type(exc).__name__)
                await asyncio.sleep(
                    min(self._config.poll_max_interval, self._config.poll_interval * 2**transient_failures)
                )
                continue
            transient_failures = 0
            if status.state in (RemoteState.COMPLETED, RemoteState.FAILED):
                await self._complete(job)
                return
            if status.state is RemoteState.CANCELLED:
                await self._end(job, JobState.CANCELLED)
                return
            job = await self._apply_progress(job, status)
            await asyncio.sleep(self.poll_delay(job, status))

    def poll_delay(self, job: Job, status: JobStatus) -> float:
        """Seconds until the next status check: long while far back in the queue, short near the end."""
        base, ceiling = self._config.poll_interval, self._config.poll_max_interval
        if status.state is RemoteState.QUEUED:
            position = status.queue_position
            delay = base * 1.5 if position is None else base * (1 + position / 2)
        elif status.state is RemoteState.RUNNING:
            expected = job.images_reserved * SECONDS_PER_IMAGE
            if job.options.get("mode") == "standard":
                expected += STANDARD_MODE_EXTRA
            started = job.started_at or self._clock()
            remaining = expected * 0.8 - (self._clock() - started)
            delay = max(base, remaining / 2)
        else:
            delay = base
        return min(max(delay, base), ceiling)

    async def _apply_progress(self, job: Job, status: JobStatus) -> Job:
        target = _REMOTE_TO_LOCAL.get(status.state)
        if target is None:
            log.warning("job %s: unknown RunComfy status %r; polling on", job.id, status.raw_state)
            return job
        position = status.queue_position if target is JobState.QUEUED else None
        if target is job.state and position == job.queue_position:
            return job
        async with self._lock(job.id):
            current = await self._storage.get_job(job.id)
            if current is None or current.state.terminal or current.state is JobState.DELIVERING:
                return current or job
            if target is JobState.QUEUED and current.state is JobState.RUNNING:
                return current  # never step back
            updated = await self._storage.transition(job.id, target, queue_position=position)
        await self._notify(updated)
        return updated

    async def _complete(self, job: Job) -> None:
        try:
            result = await self._runcomfy.result(job.request_id)
        except NotFoundError:
            await self._end(job, JobState.EXPIRED, "the images expired at RunComfy before they could be fetched")
            return
        if result.state is RemoteState.FAILED or (result.state is RemoteState.COMPLETED and not result.image_urls):
            reason = _shorten_reason(result.error) or "RunComfy returned no images"
            await self._end(job, JobState.FAILED, f"RunComfy could not generate it ({reason})")
            return
        if result.state is not RemoteState.COMPLETED:
            return  # result lags behind status: the supervisor's next round polls again
        await self._deliver(job, result.image_urls)

    # ---- delivery ---------------------------------------------------------------------------

    async def _deliver(self, job: Job, urls: Sequence[str] | None = None) -> None:
        if urls is None:
            try:
                result = await self._runcomfy.result(job.request_id)
            except NotFoundError:
                await self._end(job, JobState.EXPIRED, "the images expired at RunComfy before they could be posted")
                return
            urls = result.image_urls
        async with self._lock(job.id):
            current = await self._storage.get_job(job.id)
            if current is None or current.state.terminal:
                return
            if current.state is not JobState.DELIVERING:
                current = await self._storage.transition(job.id, JobState.DELIVERING)
        job = current
        await self._notify(job)

        folder = self._config.workdir / job.id
        try:
            downloaded = await download_images(
                self._runcomfy,
                urls,
                folder,
                job.id,
                max_bytes=self._config.download_max_bytes,
                concurrency=self._config.download_concurrency,
            )
            plan = await plan_delivery(downloaded, self._observer.upload_limit(job))
            if plan.delivered == 0:
                await self._end(job, JobState.EXPIRED, "the images could not be downloaded from RunComfy")
                return
            try:
                gallery_url = await self._post_batches(job, plan)
            except _PostingFailed:
                await self._end(job, JobState.FAILED, "the images could not be posted in this channel")
                return
            job = await self._finish(job, JobState.DELIVERED, images_delivered=plan.delivered)
            log.info("job %s: delivered %d of %d image(s)", job.id, plan.delivered, job.images_reserved)
            await self._observer.delivery_finished(job, plan, gallery_url)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _post_batches(self, job: Job, plan: DeliveryPlan) -> str | None:
        """Post the batches not posted yet (a restart mid-delivery skips those already sent)."""
        progress_key, gallery_key = f"delivery_parts:{job.id}", f"gallery_url:{job.id}"
        done = int(await self._storage.get_meta(progress_key) or 0)
        gallery_url = await self._storage.get_meta(gallery_key)
        parts = len(plan.batches)
        for part, batch in enumerate(plan.batches, start=1):
            if part <= done:
                continue
            for attempt in range(1, POST_ATTEMPTS + 1):
                try:
                    url = await self._observer.post_images(job, batch, part, parts)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("job %s: posting part %d/%d failed (attempt %d): %s", job.id, part, parts, attempt, exc)
                    if attempt == POST_ATTEMPTS:
                        raise _PostingFailed from exc
                    await asyncio.sleep(min(30.0, self._config.poll_interval * 2**attempt))
            if gallery_url is None and url:
                gallery_url = url
                await self._storage.set_meta(gallery_key, url)
            await self._storage.set_meta(progress_key, str(part))
        return gallery_url

    # ---- endings ---------------------------------------------------------------------------

    async def _finish(self, job: Job, state: JobState, *, images_delivered: int = 0, error: str | None = None) -> Job:
        async with self._lock(job.id):
            return await self._storage.finish_job(job.id, state, images_delivered=images_delivered, error=error)

    async def _end(self, job: Job, state: JobState, error: str | None = None) -> None:
        ended = await self._finish(job, state, error=error)
        log.info("job %s: %s%s", job.id, ended.state.value, f" ({error})" if error else "")
        await self._notify(ended)

    async def _notify(self, job: Job) -> None:
        try:
            await self._observer.job_changed(job)
        except Exception:
            log.exception("job %s: the status message could not be updated", job.id)

    # ---- cancel ----------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> CancelReply:
        """Cancel a job that is still queued at RunComfy (running jobs cannot be cancelled)."""
        async with self._lock(job_id):
            job = await self._storage.get_job(job_id)
            if job is None:
                return CancelReply.UNKNOWN_JOB
            if job.state.terminal:
                return CancelReply.FINISHED
            if job.request_id is None:
                return CancelReply.NOT_SUBMITTED_YET
            if job.state in (JobState.RUNNING, JobState.DELIVERING):
                return CancelReply.NOT_CANCELLABLE
            try:
                answer = await self._runcomfy.cancel(job.request_id)
            except RunComfyError as exc:
                log.warning("job %s: cancel failed: %s", job.id, type(exc).__name__)
                return CancelReply.UNAVAILABLE
            if answer.outcome is CancelOutcome.CANCELLED:
                job = await self._storage.finish_job(job.id, JobState.CANCELLED)
                reply = CancelReply.CANCELLED
            else:
                if answer.state is RemoteState.RUNNING and job.state is not JobState.RUNNING:
                    job = await self._storage.transition(job.id, JobState.RUNNING)
                reply = CancelReply.NOT_CANCELLABLE
        task = self._tasks.get(job_id)
        if reply is CancelReply.CANCELLED and task is not None:
            task.cancel()
        log.info("job %s: cancel -> %s", job.id, reply.value)
        await self._notify(job)
        return reply


def _shorten_reason(error: str | None, limit: int = 160) -> str | None:
    if not error:
        return None
    error = " ".join(str(error).split())
    return error if len(error) <= limit else error[: limit - 1] + "…"
