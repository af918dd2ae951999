"""The tracker on its own: poll pacing, resuming after a restart, deadlines, a lagging result, cancel and auth errors.

A real database; RunComfy is a scripted stand-in, so each situation is exact; the Discord side records what it is told.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.domain.job_state import JobState
from bot.engine.outcomes import RESTART_MESSAGE, CancelReply
from bot.engine.tracker import Tracker
from bot.engine.tracker_config import TrackerConfig
from bot.runcomfy.client import AuthError, CancelOutcome, CancelResult, JobResult, JobStatus, RemoteState
from tests.imagine_helpers import eventually


def status(state: RemoteState, position: int | None = None) -> JobStatus:
    return JobStatus("req", state, position, state.value)


def result(state: RemoteState, images: int = 0, error: str | None = None) -> JobResult:
    urls = tuple(f"https://outputs.example/{i}.png" for i in range(1, images + 1))
    return JobResult("req", state, urls, error, None, None)


class ScriptedRunComfy:
    """Answers from scripts: each call takes the next answer; the last one repeats. Exceptions are raised."""

    def __init__(self, statuses: list[Any], results: list[Any] | None = None) -> None:
        self.statuses = deque(statuses)
        self.results = deque(results or [result(RemoteState.COMPLETED, 2)])
        self.calls: list[str] = []
        self.cancel_outcome = CancelOutcome.CANCELLED

    @staticmethod
    def _next(script: deque[Any]) -> Any:
        answer = script.popleft() if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def status(self, request_id: str) -> JobStatus:
        self.calls.append("status")
        return self._next(self.statuses)

    async def result(self, request_id: str) -> JobResult:
        self.calls.append("result")
        return self._next(self.results)

    async def cancel(self, request_id: str) -> CancelResult:
        self.calls.append("cancel")
        state = RemoteState.CANCELLED if self.cancel_outcome is CancelOutcome.CANCELLED else RemoteState.RUNNING
        return CancelResult(request_id, self.cancel_outcome, state)

    async def submit(self, request: Any) -> None:
        raise AssertionError("the tracker must never submit")

    async def download(self, url: str, *, max_bytes: int, dest: Path | None = None) -> Path:
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, "PNG")
        assert dest is not None
        dest.write_bytes(buffer.getvalue())  # noqa: ASYNC240 (a few bytes, in a test)
        return dest


class RecordingObserver:
    def __init__(self) -> None:
        self.states: list[JobState] = []
        self.positions: list[int | None] = []
        self.posted: list[list[int]] = []
        self.reports: list[Any] = []

    async def job_changed(self, job) -> None:
        self.states.append(job.state)
        self.positions.append(job.queue_position)

    async def post_images(self, job, batch, total, *, nonce=None) -> str:
        self.posted.append([image.index for image in batch])
        return f"https://discord.example/{len(self.posted)}"

    async def post_link(self, job, image, total, *, nonce=None) -> str:
        raise AssertionError("nothing is too large here")

    async def find_posted(self, job, part) -> str | None:
        return None

    async def delivery_finished(self, job, report) -> None:
        self.states.append(job.state)
        self.reports.append(report)

    def upload_limit(self, job) -> int:
        return 10 * 1024 * 1024

    def lower_upload_limit(self, job, limit) -> None:
        raise AssertionError("no refusals here")

    async def close(self) -> None:
        pass


def config(tmp_path: Path, **changes: Any) -> TrackerConfig:
    values = {"workdir": tmp_path / "work", "poll_interval": 0.01, "poll_max_interval": 0.05, "job_deadline": 60.0}
    return TrackerConfig(**(values | changes))


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


async def submitted_job(storage, reserve_job, images: int = 2):
    job = await reserve_job(images)
    return await storage.set_request_id(job.id, f"req-{job.id}")


async def test_resume_fails_old_pending_jobs_and_follows_submitted_ones_without_submitting(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    stranded = await reserve_job(2)  # the previous run died before RunComfy answered
    submitted = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy([status(RemoteState.COMPLETED)])
    storage_clock.advance(5)
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)
    fresh = await reserve_job(1, user_id=7)  # a command of this run, being submitted right now

    assert await tracker.resume() == 1

    failed = await storage.get_job(stranded.id)
    assert failed.state is JobState.FAILED and failed.error == RESTART_MESSAGE and failed.images_charged == 0
    assert (await storage.get_job(fresh.id)).state is JobState.PENDING
    done = await eventually(lambda: _in_state(storage, submitted.id, JobState.DELIVERED))
    assert done.images_charged == 2
    assert JobState.FAILED in observer.states and observer.states[-1] is JobState.DELIVERED
    assert "submit" not in runcomfy.calls
    await tracker.close()


async def test_a_result_lagging_behind_the_status_is_polled_until_it_is_there(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    lagging = [result(RemoteState.RUNNING), result(RemoteState.RUNNING), result(RemoteState.COMPLETED, 2)]
    runcomfy = ScriptedRunComfy([status(RemoteState.COMPLETED)], lagging)
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)

    tracker.follow(job)

    await eventually(lambda: _in_state(storage, job.id, JobState.DELIVERED))
    assert runcomfy.calls.count("result") == 3
    assert observer.posted == [[1, 2]]
    await tracker.close()


async def test_past_the_deadline_a_queued_job_is_cancelled_at_runcomfy_and_failed(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 9)])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path, job_deadline=1800), clock=storage_clock)
    tracker.follow(job)
    await eventually(lambda: _in_state(storage, job.id, JobState.QUEUED))

    storage_clock.advance(1801)

    failed = await eventually(lambda: _in_state(storage, job.id, JobState.FAILED))
    assert failed.error == "RunComfy did not finish it within 30 minutes"
    assert failed.images_charged == 0 and "cancel" in runcomfy.calls
    await tracker.close()


async def test_past_the_deadline_a_completed_job_is_still_delivered(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    storage_clock.advance(7200)  # the bot was down for two hours; RunComfy finished meanwhile
    runcomfy = ScriptedRunComfy([status(RemoteState.COMPLETED)])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path, job_deadline=1800), clock=storage_clock)

    tracker.follow(job)

    done = await eventually(lambda: _in_state(storage, job.id, JobState.DELIVERED))
    assert done.images_charged == 2 and "cancel" not in runcomfy.calls
    await tracker.close()


async def test_cancel_of_a_queued_job_stops_following_it(storage, reserve_job, storage_clock, observer, tmp_path):
    job = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 3)])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)
    tracker.follow(job)
    await eventually(lambda: _in_state(storage, job.id, JobState.QUEUED))

    assert await tracker.cancel(job.id) is CancelReply.CANCELLED

    await eventually(lambda: tracker.in_flight == 0)
    cancelled = await storage.get_job(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.images_charged == 0
    assert await tracker.cancel(job.id) is CancelReply.FINISHED
    assert observer.states[-1] is JobState.CANCELLED


async def test_cancel_of_a_job_that_started_marks_it_running(storage, reserve_job, storage_clock, observer, tmp_path):
    job = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 1)])
    runcomfy.cancel_outcome = CancelOutcome.NOT_CANCELLABLE
    tracker = Tracker(
        storage, runcomfy, observer, config(tmp_path, poll_interval=5, poll_max_interval=5), clock=storage_clock
    )

    assert await tracker.cancel(job.id) is CancelReply.NOT_CANCELLABLE

    assert (await storage.get_job(job.id)).state is JobState.RUNNING
    assert observer.states[-1] is JobState.RUNNING
    assert await tracker.cancel(job.id) is CancelReply.NOT_CANCELLABLE


async def test_a_refused_token_while_polling_is_logged_once_for_admins_and_the_job_kept(
    storage, reserve_job, storage_clock, observer, tmp_path, caplog
):
    job = await submitted_job(storage, reserve_job)
    refused = AuthError("token refused", status=401, error_code=400004)
    runcomfy = ScriptedRunComfy([refused, refused, refused, status(RemoteState.COMPLETED)])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)
    caplog.set_level(logging.WARNING)

    tracker.follow(job)

    await eventually(lambda: _in_state(storage, job.id, JobState.DELIVERED))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "RUNCOMFY_API_TOKEN" in errors[0]
    await tracker.close()


async def _in_state(storage, job_id: str, state: JobState):
    job = await storage.get_job(job_id)
    return job if job is not None and job.state is state else None


async def test_a_move_in_the_queue_is_one_database_statement(
    storage, reserve_job, storage_clock, observer, tmp_path, monkeypatch
):
    job = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, position) for position in (9, 8, 7)])
    settings = config(tmp_path, poll_interval=0.2, poll_max_interval=0.3, position_write_interval=0)
    tracker = Tracker(storage, runcomfy, observer, settings, clock=storage_clock)
    statements = []
    for name in ("fetchall", "write"):
        real = getattr(storage, name)

        async def counting(sql, parameters=(), real=real, name=name):
            statements.append(name)
            return await real(sql, parameters)

        monkeypatch.setattr(storage, name, counting)

    tracker.follow(job)
    await eventually(lambda: JobState.QUEUED in observer.states)
    statements.clear()
    await eventually(lambda: len(observer.states) == 3 and runcomfy.calls.count("status") >= 5)
    await tracker.close()

    assert statements == ["write", "write"]  # positions 8 and 7; polls that change nothing write nothing
    assert (await storage.get_job(job.id)).queue_position == 7


async def test_a_job_followed_from_submission_to_delivery_is_never_read_back(
    storage, reserve_job, storage_clock, observer, tmp_path, monkeypatch
):
    """The tracker moves the job on from the state it last saw: queued, running, delivering and delivered are
    one write each, with no read of the job's row before them (nor of a delivery's progress, as none can have
    been saved); RunComfy's cost is booked by the last one."""
    job = await submitted_job(storage, reserve_job)
    completed = dataclasses.replace(result(RemoteState.COMPLETED, 2), cost_micros=61_000)
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 2), status(RemoteState.RUNNING)], [completed])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path, position_write_interval=0), clock=storage_clock)
    job_reads, job_writes = [], []
    real_get_job, real_write, real_get_meta = storage.get_job, storage.write, storage.get_meta

    async def counting_meta(key):
        if key.startswith("delivery:"):
            job_reads.append(key)
        return await real_get_meta(key)

    async def counting_reads(job_id):
        job_reads.append(job_id)
        return await real_get_job(job_id)

    async def counting_writes(sql, parameters=()):
        if "UPDATE jobs" in sql:
            job_writes.append(sql)
        return await real_write(sql, parameters)

    monkeypatch.setattr(storage, "get_job", counting_reads)
    monkeypatch.setattr(storage, "write", counting_writes)
    monkeypatch.setattr(storage, "get_meta", counting_meta)
    tracker.follow(job)
    await eventually(lambda: JobState.DELIVERED in observer.states)
    await tracker.close()
    monkeypatch.undo()

    assert job_reads == []
    assert len(job_writes) == 4
    done = await storage.get_job(job.id)
    assert done.state is JobState.DELIVERED and done.images_charged == 2 and observer.posted == [[1, 2]]
    assert (done.cost_micros, done.cost_estimated) == (61_000, False)
    assert observer.states == [JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING, JobState.DELIVERED]


async def test_a_queue_position_alone_is_shown_at_once_and_stored_at_most_every_interval(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    positions = [status(RemoteState.QUEUED, position) for position in range(30, 0, -1)]
    runcomfy = ScriptedRunComfy(positions)
    settings = config(tmp_path, poll_interval=0.01, poll_max_interval=0.01, position_write_interval=10.0)
    tracker = Tracker(storage, runcomfy, observer, settings, clock=storage_clock)
    tracker.follow(job)
    await eventually(lambda: 20 in observer.positions)
    assert (await storage.get_job(job.id)).queue_position == 30  # the first, stored with the move to queued

    storage_clock.advance(10.0)  # the stored position is now that old: the next one is written
    await eventually(lambda: 5 in observer.positions)
    stored = (await storage.get_job(job.id)).queue_position
    await tracker.close()
    assert 5 < stored < 20
    assert observer.positions[: observer.positions.index(20) + 1] == list(range(30, 19, -1))  # every one shown
