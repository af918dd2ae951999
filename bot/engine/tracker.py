"""Follows every unfinished job from submission to delivery, and resumes them after a restart.

One task per job polls RunComfy (the loop in `bot.engine.polling`, paced by `bot.domain.poll_policy`: slowly
while a job waits far back in the queue, densely around the end expected from the learned run times in
`bot.store.run_times`), moves the job through its states in the database (a queue position alone at most every
`position_write_interval`), tells the observer (the Discord side) about every change, and delivers the images.
The task keeps its job in memory and moves it on from the state it last saw, in one statement; it reads the
database only if another task (under the job's lock, which a Cancel click takes too) or process moved it. A job
with a request_id is never submitted again; charging happens once, in `finish_job`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.domain.job_state import JobState
from bot.domain.poll_policy import Ask, PollPolicy, RunWatch
from bot.domain.text import duration_text, shorten
from bot.engine.cancelling import cancel_job
from bot.engine.delivery import post_set
from bot.engine.observer import JobObserver
from bot.engine.outcome_unknown import OUTCOME_UNKNOWN_MESSAGE, log_outcome_unknown
from bot.engine.outcomes import (
    EXPIRED_MESSAGE,
    GENERATION_FAILED,
    NOT_DOWNLOADED_MESSAGE,
    RESTART_MESSAGE,
    UPSTREAM_EXCERPT_CHARS,
    CancelReply,
)
from bot.engine.polling import End, Sighting, poll_job
from bot.engine.tracker_config import TrackerConfig
from bot.logging_setup import Redactor, for_job
from bot.runcomfy.backoff import doubling
from bot.runcomfy.client import (
    AuthError,
    JobResult,
    JobStatus,
    NotFoundError,
    RemoteState,
    RunComfyClient,
    RunComfyError,
)
from bot.store.database import Job, Storage, storage_failure
from bot.store.run_times import RunTimes

log = logging.getLogger(__name__)

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
        run_times: RunTimes | None = None,
    ) -> None:
        self._storage = storage
        self._runcomfy = runcomfy
        self._observer = observer
        self._config = config
        self._clock = clock
        self._redact = Redactor(config.secrets)
        self._policy = PollPolicy.from_intervals(config.poll_interval, config.poll_max_interval)
        self._run_times = run_times if run_times is not None else RunTimes(storage)
        self._started_at = clock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing = False
        # Told of every job this process cancelled (other processes may be following it; see bot.engine.leases).
        self.cancel_listeners: list[Callable[[str], Awaitable[None]]] = []
        self.shared = False  # other processes use the database too: look at a job's state before each poll

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
            if job.request_id is None and job.created_at >= self._started_at:
                continue  # a command of this run, being submitted right now
            resumed += await self._take_up(job)
        log.info("resumed %d unfinished job(s)", resumed)
        return resumed

    async def adopt(self, jobs: Sequence[Job]) -> int:
        """Follow jobs taken over from a process that stopped (see `bot.engine.leases`); returns how many."""
        adopted = 0
        for job in jobs:
            adopted += await self._take_up(job)
        if jobs:
            log.info("took over %d unfinished job(s)", adopted)
        return adopted

    async def _take_up(self, job: Job) -> int:
        """Follow a job a process before this one left unfinished (1), or end it if it was never sent (0)."""
        if job.request_id is None:
            if job.submitted_at is None:  # the previous run died before sending it: nothing was made
                await self._end(job, JobState.FAILED, RESTART_MESSAGE)
            else:  # it died while sending: RunComfy may have taken it, and sending it again could pay twice
                await self._end(job, JobState.UNKNOWN, OUTCOME_UNKNOWN_MESSAGE)
                log_outcome_unknown(job)
            return 0
        if job.id in self._tasks:
            return 0
        await self._notify(job)  # shows the status again, with its Cancel button while queued
        self.follow(job)
        return 1

    def following(self, job_id: str) -> bool:
        return job_id in self._tasks

    async def stop_following(self, job_ids: Sequence[str] | None = None) -> None:
        """Stop the tasks of these jobs (all: None) and keep the tracker running; the jobs stay as they are in the
        database (another process may be following them now)."""
        tasks = [t for job_id, t in self._tasks.items() if job_ids is None or job_id in job_ids]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def follow(self, job: Job) -> None:
        if self._closing or job.id in self._tasks or job.state.terminal:
            return
        task = asyncio.create_task(self._supervise(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        job_id = job.id
        task.add_done_callback(lambda _t: self._forget(job_id))

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
        await self._observer.close()

    # ---- following one job -------------------------------------------------------------------

    async def _supervise(self, given: Job) -> None:
        job_id, restarts = given.id, 0
        known: Job | None = given  # a restart reads the job again
        while True:
            pause = doubling(self._config.poll_interval, 60.0, restarts)
            try:
                await self._follow(job_id, known)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                cause = storage_failure(exc)
                if cause is not None:  # a full disk, say: the job goes on once it can be written again
                    log.error("job %s: %s; retrying in %.1f s", job_id, cause, pause)
                else:
                    log.exception("job %s: unexpected error while following it; retrying in %.1f s", job_id, pause)
                await asyncio.sleep(pause)
                restarts, known = restarts + 1, None

    async def _follow(self, job_id: str, known: Job | None) -> None:
        job = known or await self._storage.get_job(job_id)
        if job is None or job.state.terminal:
            return
        await self._run_times.load(job.options)
        # A job resumed in the middle of delivering asks for its result again, which carries the images.
        ask = Ask.RESULT if job.state in (JobState.RUNNING, JobState.DELIVERING) else Ask.STATUS
        run = RunWatch(self._policy.front, started_at=job.started_at)
        options, images = job.options, job.images_reserved
        try:
            async for seen in poll_job(
                self._runcomfy,
                _request_id(job),
                self._policy,
                run=run,
                expect=lambda: self._run_times.expect(options, images),
                clock=self._clock,
                deadline=job.created_at + self._config.job_deadline,
                ask=ask,
                keep_on_errors=True,
            ):
                followed = await self._saw(job, seen, run)
                if followed is None or followed.state.terminal:
                    return
                if self.shared and await self._ended_elsewhere(job.id):
                    return
                job = followed
        except NotFoundError:
            await self._end(job, JobState.EXPIRED, EXPIRED_MESSAGE)

    async def _ended_elsewhere(self, job_id: str) -> bool:
        """Whether another process ended the job (a Cancel click there) since this one last looked."""
        current = await self._storage.get_job(job_id)
        return current is None or current.state.terminal

    async def _saw(self, job: Job, seen: Sighting, run: RunWatch) -> Job | None:
        """Act on one look at RunComfy: record progress (the job as it is now), or deliver or end it (None)."""
        if seen.error is not None:
            # The client already retried what is worth retrying; keep the job and look again later.
            self._log_poll_failure(job, seen.error, seen.failures)
        if seen.end is End.RESULT and seen.result is not None:
            await self._complete(job, seen.result, run)
        elif seen.end is End.CANCELLED:
            await self._end(job, JobState.CANCELLED)
        elif seen.end is End.DEADLINE:
            await self._give_up(job, seen.status)
        if seen.end is not None:
            return None
        if seen.status is not None and not seen.status.state.terminal and job.state is not JobState.DELIVERING:
            return await self._apply_progress(job, seen.status)
        return job

    def _log_poll_failure(self, job: Job, exc: RunComfyError, failures: int) -> None:
        if isinstance(exc, AuthError):
            if failures == 1:
                for_job(log, job).error("RunComfy rejected the API token; an admin must fix RUNCOMFY_API_TOKEN")
            return
        for_job(log, job).warning("RunComfy could not be asked about it (%s); will retry", type(exc).__name__)

    async def _give_up(self, job: Job, status: JobStatus | None) -> None:
        """The deadline passed: fail the job, and cancel it at RunComfy if it may still be queued there."""
        maybe_queued = status is None or status.state is RemoteState.QUEUED
        if job.state in (JobState.SUBMITTED, JobState.QUEUED) and maybe_queued:
            try:
                await self._runcomfy.cancel(_request_id(job))
            except RunComfyError as exc:
                for_job(log, job).warning("could not cancel it at RunComfy after its deadline: %s", exc)
        limit = duration_text(self._config.job_deadline)
        await self._end(job, JobState.FAILED, f"RunComfy did not finish it within {limit}")

    async def _apply_progress(self, job: Job, status: JobStatus) -> Job:
        target = _REMOTE_TO_LOCAL.get(status.state)
        if target is None:
            for_job(log, job).warning("unknown RunComfy status %r; polling on", status.raw_state)
            return job
        position = status.queue_position if target is JobState.QUEUED else None
        if target is job.state and position == job.queue_position:
            return job
        if target is job.state and self._storage.clock() - job.updated_at < self._config.position_write_interval:
            moved_up = dataclasses.replace(job, queue_position=position)  # shown now, stored once the stored one is old
            await self._notify(moved_up)
            return moved_up
        async with self._lock(job.id):
            # Most often the job is still as this task last saw it: then one statement moves it.
            moved = await self._storage.try_transition(job, target, queue_position=position)
            if moved is not None:
                updated = moved
            else:
                current = await self._storage.get_job(job.id)
                if current is None or current.state.terminal or current.state is JobState.DELIVERING:
                    return current or job
                if target is JobState.QUEUED and current.state is JobState.RUNNING:
                    return current  # never step back
                updated = await self._storage.transition(job.id, target, queue_position=position)
        await self._notify(updated)
        return updated

    async def _complete(self, job: Job, result: JobResult, run: RunWatch) -> None:
        """RunComfy's final answer: deliver its images, or end the job as it says."""
        if result.state is RemoteState.CANCELLED:
            await self._end(job, JobState.CANCELLED, cost_micros=result.cost_micros)
            return
        if result.state is RemoteState.FAILED or not result.image_urls:
            excerpt = shorten(self._redact(result.error or ""), UPSTREAM_EXCERPT_CHARS) or "it returned no images"
            await self._end(job, JobState.FAILED, f"{GENERATION_FAILED} ({excerpt})", result.cost_micros)
            return
        ran = run.run_seconds(self._clock(), self._policy.max_gap)
        await self._deliver(job, result.image_urls, result.cost_micros)
        if ran is not None:  # learned after the delivery, which must not wait for it
            await self._run_times.learn(job.options, len(result.image_urls), ran)

    # ---- delivery ---------------------------------------------------------------------------

    async def _deliver(self, job: Job, urls: Sequence[str], cost: int | None) -> None:
        """Post the images; RunComfy's `cost` of the job is booked when it is settled."""
        async with self._lock(job.id):
            storage = self._storage
            moved = await storage.try_transition(job, JobState.DELIVERING)
            # Moved in from another state: no delivery of it began before, so it has no saved progress to read.
            fresh = moved is not None and job.state is not JobState.DELIVERING
            current = moved or await storage.get_job(job.id)
            if current is None or current.state.terminal:
                return
            if current.state is not JobState.DELIVERING:
                current = await storage.transition(job.id, JobState.DELIVERING)
        job = current
        await self._notify(job)

        folder = self._config.workdir / job.id
        time_left = job.created_at + self._config.job_deadline - self._clock()
        if time_left <= 0:  # finished at RunComfy while the bot was down: still delivered, within one download's time
            time_left = self._config.download_timeout
        try:
            report = await post_set(
                self._runcomfy,
                self._observer,
                job,
                urls,
                folder,
                meta=self._storage,
                fresh=fresh,
                max_bytes=self._config.download_max_bytes,
                concurrency=self._config.download_concurrency,
                retry_pause=self._config.poll_interval,
                time_left=time_left,
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        if report.delivered == 0:
            if report.late:
                limit = duration_text(self._config.job_deadline)
                await self._end(job, JobState.FAILED, f"the images could not be delivered within {limit}", cost)
            elif report.failed:
                await self._end(job, JobState.FAILED, report.failed, cost)
            else:
                await self._end(job, JobState.EXPIRED, NOT_DOWNLOADED_MESSAGE, cost)
            return
        job = await self._finish(job, JobState.DELIVERED, images_delivered=report.delivered, cost_micros=cost)
        for_job(log, job).info("delivered %d of %d image(s)", report.delivered, job.images_reserved)
        try:
            await self._observer.delivery_finished(job, report)
        except Exception:
            for_job(log, job).exception("the status message could not be updated")

    # ---- endings ---------------------------------------------------------------------------

    async def _finish(
        self,
        job: Job,
        state: JobState,
        *,
        images_delivered: int = 0,
        error: str | None = None,
        cost_micros: int | None = None,
    ) -> Job:
        async with self._lock(job.id):
            return await self._storage.finish_job(
                job.id, state, images_delivered=images_delivered, error=error, seen=job, cost_micros=cost_micros
            )

    async def _end(self, job: Job, state: JobState, error: str | None = None, cost_micros: int | None = None) -> None:
        ended = await self._finish(job, state, error=error, cost_micros=cost_micros)
        for_job(log, ended).info("ended %s%s", ended.state.value, f" ({error})" if error else "")
        await self._notify(ended)

    async def _notify(self, job: Job) -> None:
        try:
            await self._observer.job_changed(job)
        except Exception:
            for_job(log, job).exception("the status message could not be updated")

    # ---- cancel ----------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> CancelReply:
        """Cancel a job that is still queued at RunComfy (running jobs cannot be cancelled)."""
        async with self._lock(job_id):
            reply, job = await cancel_job(self._storage, self._runcomfy, job_id)
        if job is None:
            return reply
        task = self._tasks.get(job_id)
        if reply is CancelReply.CANCELLED and task is not None:
            task.cancel()
        if reply is CancelReply.CANCELLED:
            for listener in self.cancel_listeners:
                await listener(job_id)
        for_job(log, job).info("cancel -> %s", reply.value)
        await self._notify(job)
        return reply


def _request_id(job: Job) -> str:
    """RunComfy's id of a job being followed: only submitted jobs are followed, and those have one."""
    assert job.request_id is not None, f"job {job.id} is followed without a request id"
    return job.request_id
