"""The lease keeper: taking over the jobs of a process that stopped, stepping back when its own lease may be lost,
and a Cancel clicked in one process stopping the process that follows the job.

Two trackers on one database stand for two processes; RunComfy is scripted, Discord records what it is told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bot.domain.job_state import JobState
from bot.engine.leases import LeaseKeeper
from bot.engine.outcomes import CancelReply
from bot.engine.tracker import Tracker
from bot.runcomfy.client import RemoteState
from bot.store.leases import Leases
from tests.fixtures.postgres import BACKENDS
from tests.imagine_helpers import eventually
from tests.unit.engine.test_tracker import RecordingObserver, ScriptedRunComfy, config, result, status

LEASE = 60.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Bus:
    """Cancel signals between the processes of one test, as LISTEN/NOTIFY carries them between real ones."""

    def __init__(self) -> None:
        self.receivers: list[Callable[[str], Awaitable[None]]] = []
        self.published: list[str] = []

    def signal(self) -> Signal:
        return Signal(self)


class Signal:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, job_id: str) -> None:
        self.bus.published.append(job_id)
        for receive in list(self.bus.receivers):
            await receive(job_id)

    async def subscribe(self, receive: Callable[[str], Awaitable[None]]) -> None:
        self.bus.receivers.append(receive)

    async def close(self) -> None:
        pass


class Process:
    """One bot process: its tracker and its lease keeper on the shared database."""

    def __init__(self, name, storage, runcomfy, tmp_path, clock, *, signal=None) -> None:
        self.observer = RecordingObserver()
        self.runcomfy = runcomfy
        self.tracker = Tracker(storage, runcomfy, self.observer, config(tmp_path / name), clock=clock)
        self.keeper = LeaseKeeper(Leases(storage, name), self.tracker, lease=LEASE, signal=signal, clock=clock)
        self.tracker.cancel_listeners.append(self.keeper.cancelled)

    async def close(self) -> None:
        await self.tracker.close()
        await self.keeper.close()


async def submitted_by(process: Process, storage, reserve_job, user_id: int = 1):
    job = await reserve_job(2, user_id=user_id)
    storage.owner = process.keeper.leases.process_id
    await storage.mark_submitting(job.id)
    job = await storage.set_request_id(job.id, f"req-{job.id}")
    storage.owner = None
    return job


async def _in_state(storage, job_id: str, state: JobState):
    job = await storage.get_job(job_id)
    return job if job is not None and job.state is state else None


@pytest.fixture
async def processes(storage, storage_clock, tmp_path):
    made: list[Process] = []

    async def make(name: str, runcomfy: ScriptedRunComfy, *, signal=None) -> Process:
        process = Process(name, storage, runcomfy, tmp_path, storage_clock, signal=signal)
        await process.keeper.register(shards="0")
        storage.owner = None  # each test says which process submits
        made.append(process)
        return process

    yield make
    for process in reversed(made):
        await process.close()


async def test_the_jobs_of_a_process_whose_lease_expired_are_taken_over_and_delivered_once(
    storage, reserve_job, storage_clock, processes
):
    dead = await processes("dead", ScriptedRunComfy([status(RemoteState.QUEUED, 2)]))
    jobs = [await submitted_by(dead, storage, reserve_job, user_id=n) for n in range(3)]
    survivor = await processes("survivor", ScriptedRunComfy([status(RemoteState.COMPLETED)]))

    await survivor.keeper.tick()
    assert survivor.keeper.taken_over == 0  # the dead one's lease has not expired yet
    storage_clock.advance(LEASE + 1)
    await survivor.keeper.tick()

    assert survivor.keeper.taken_over == 3
    for job in jobs:
        done = await eventually(lambda job=job: _in_state(storage, job.id, JobState.DELIVERED))
        assert done.images_charged == 2
    assert sorted(survivor.observer.posted) == [[1, 2]] * 3  # each set posted once, by the survivor
    assert "submit" not in survivor.runcomfy.calls
    await survivor.keeper.tick()
    assert survivor.keeper.taken_over == 3  # nothing taken twice


async def test_a_process_that_cannot_renew_its_lease_stops_following_and_resumes_once_it_can(
    storage, reserve_job, storage_clock, processes, monkeypatch
):
    process = await processes("flaky", ScriptedRunComfy([status(RemoteState.QUEUED, 3)]))
    job = await submitted_by(process, storage, reserve_job)
    process.tracker.follow(job)
    renew = process.keeper.leases.renew

    async def unreachable() -> bool:
        raise OSError("database unreachable")

    monkeypatch.setattr(process.keeper.leases, "renew", unreachable)
    storage_clock.advance(LEASE * 0.5)
    await process.keeper.tick()
    assert process.tracker.following(job.id)  # not yet in danger
    storage_clock.advance(LEASE * 0.3)
    await process.keeper.tick()
    assert not process.tracker.following(job.id)  # another process may take it at the full lease

    monkeypatch.setattr(process.keeper.leases, "renew", renew)
    await process.keeper.tick()
    assert process.tracker.following(job.id)  # still its own: followed again


async def test_a_process_leaving_hands_its_jobs_over_at_once(storage, reserve_job, processes):
    leaving = await processes("leaving", ScriptedRunComfy([status(RemoteState.QUEUED, 2)]))
    staying = await processes("staying", ScriptedRunComfy([status(RemoteState.COMPLETED)]))
    job = await submitted_by(leaving, storage, reserve_job)
    leaving.tracker.follow(job)

    await leaving.close()
    await staying.keeper.tick()

    assert staying.keeper.taken_over == 1
    await eventually(lambda: _in_state(storage, job.id, JobState.DELIVERED))


@pytest.mark.parametrize("with_signal", [True, False])
async def test_a_cancel_in_one_process_stops_the_process_following_the_job(
    storage, reserve_job, processes, with_signal
):
    bus = Bus()
    queued = ScriptedRunComfy([status(RemoteState.QUEUED, 4)])
    owner = await processes("owner", queued, signal=bus.signal() if with_signal else None)
    clicked = await processes("clicked", ScriptedRunComfy([status(RemoteState.QUEUED, 4)]), signal=bus.signal())
    job = await submitted_by(owner, storage, reserve_job)
    owner.tracker.follow(job)
    await eventually(lambda: "status" in queued.calls)

    assert await clicked.tracker.cancel(job.id) is CancelReply.CANCELLED

    cancelled = await storage.get_job(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.images_charged == 0 and cancelled.settled
    assert bus.published == [job.id]
    if with_signal:
        assert not owner.tracker.following(job.id)  # at once
    else:  # at its next look at the job
        await eventually(lambda: not owner.tracker.following(job.id))
    assert clicked.runcomfy.calls.count("cancel") == 1 and "cancel" not in queued.calls


async def test_a_cancelled_job_is_not_taken_over(storage, reserve_job, storage_clock, processes):
    dead = await processes("dead", ScriptedRunComfy([status(RemoteState.QUEUED, 2)]))
    job = await submitted_by(dead, storage, reserve_job)
    other = await processes("other", ScriptedRunComfy([status(RemoteState.QUEUED, 2)], [result(RemoteState.QUEUED)]))
    assert await other.tracker.cancel(job.id) is CancelReply.CANCELLED
    storage_clock.advance(LEASE + 1)
    await other.keeper.tick()
    assert other.keeper.taken_over == 0
