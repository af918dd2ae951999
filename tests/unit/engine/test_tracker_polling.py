"""How the tracker polls: status while queued, result while running, learned run times, no database read per poll."""

from __future__ import annotations

import pytest

from bot.domain.job_state import JobState
from bot.engine.tracker import Tracker
from bot.runcomfy.client import RemoteState
from bot.store.run_times import RunTimes
from tests.imagine_helpers import eventually
from tests.unit.engine.test_tracker import RecordingObserver, ScriptedRunComfy, config, result, status, submitted_job


class TimedRunComfy(ScriptedRunComfy):
    """Each answer takes `seconds` on the manual clock."""

    def __init__(self, clock, seconds: float, statuses, results) -> None:
        super().__init__(statuses, results)
        self.clock, self.seconds = clock, seconds

    async def status(self, request_id):
        self.clock.advance(self.seconds)
        return await super().status(request_id)

    async def result(self, request_id):
        self.clock.advance(self.seconds)
        return await super().result(request_id)


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


async def test_a_running_job_is_read_with_result_and_its_completion_costs_no_extra_request(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    runcomfy = ScriptedRunComfy(
        [status(RemoteState.QUEUED, 1), status(RemoteState.RUNNING)],
        [result(RemoteState.RUNNING), result(RemoteState.RUNNING), result(RemoteState.COMPLETED, 2)],
    )
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)
    tracker.follow(job)
    await eventually(lambda: tracker.in_flight == 0)

    assert runcomfy.calls == ["status", "status", "result", "result", "result"]
    assert observer.posted == [[1, 2]]
    assert (await storage.get_job(job.id)).state is JobState.DELIVERED


async def test_a_job_whose_start_was_seen_teaches_its_run_time(storage, reserve_job, storage_clock, observer, tmp_path):
    job = await submitted_job(storage, reserve_job, images=2)
    runcomfy = TimedRunComfy(
        storage_clock,
        1.0,
        [status(RemoteState.QUEUED, 1), status(RemoteState.RUNNING)],
        [result(RemoteState.RUNNING), result(RemoteState.COMPLETED, 2)],
    )
    run_times = RunTimes(storage)
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock, run_times=run_times)
    tracker.follow(job)
    await eventually(lambda: tracker.in_flight == 0)

    # Queued at 1 s, running at 2 s and 3 s, done at 4 s: about 2 s of run for 2 images, against 4 s expected.
    assert run_times.estimate(job.options).runs == 1
    assert run_times.expect(job.options, 2)[0] < 4.0
    restarted = RunTimes(storage)
    await restarted.load(job.options)
    assert restarted.estimate(job.options).runs == 1


async def test_a_job_resumed_while_running_teaches_nothing(storage, reserve_job, storage_clock, observer, tmp_path):
    job = await submitted_job(storage, reserve_job, images=2)
    job = await storage.transition(job.id, JobState.RUNNING)  # the previous run saw it start
    runcomfy = TimedRunComfy(storage_clock, 1.0, [status(RemoteState.RUNNING)], [result(RemoteState.COMPLETED, 2)])
    run_times = RunTimes(storage)
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock, run_times=run_times)
    await tracker.resume()
    await eventually(lambda: tracker.in_flight == 0)

    assert runcomfy.calls == ["result"]
    assert run_times.estimate(job.options).runs == 0


async def test_polls_that_change_nothing_do_not_read_the_job_from_the_database(
    storage, reserve_job, storage_clock, observer, tmp_path
):
    job = await submitted_job(storage, reserve_job)
    reads = []
    real = storage.get_job

    async def counting(job_id):
        reads.append(job_id)
        return await real(job_id)

    storage.get_job = counting
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 3)])
    tracker = Tracker(storage, runcomfy, observer, config(tmp_path), clock=storage_clock)
    tracker.follow(job)
    await eventually(lambda: len(runcomfy.calls) >= 12)
    await tracker.close()

    assert len(reads) <= 3  # the first read, and the move to queued (read again under the job's lock)
