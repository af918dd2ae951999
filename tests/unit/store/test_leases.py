"""Leases on a shared database: heartbeats, claiming the jobs of a process whose lease expired, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bot.domain.job_state import JobState
from bot.store.database import Storage
from bot.store.leases import DatabaseCancelSignal, Leases
from tests.fixtures.postgres import BACKENDS

LEASE = 60.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def submitted(storage: Storage, reserve_job, owner: Leases | None, user_id: int = 1) -> str:
    """A job submitted by `owner` (its process takes it when the submit is recorded)."""
    job = await reserve_job(2, user_id=user_id)
    storage.owner = owner.process_id if owner else None
    await storage.mark_submitting(job.id)
    await storage.set_request_id(job.id, f"req-{job.id}")
    storage.owner = None
    return job.id


async def joined(storage: Storage, name: str) -> Leases:
    leases = Leases(storage, name)
    await leases.register(host="host", pid=1, shards="0")
    return leases


async def test_a_submitted_job_belongs_to_its_process_and_is_not_claimed_while_it_lives(
    storage, reserve_job, storage_clock
):
    first, second = await joined(storage, "first"), await joined(storage, "second")
    job_id = await submitted(storage, reserve_job, first)

    assert await first.owner_of(job_id) == "first"
    assert [job.id for job in await first.owned()] == [job_id]
    storage_clock.advance(LEASE - 1)
    assert await second.claim(LEASE) == []
    assert await first.renew()
    storage_clock.advance(LEASE - 1)  # renewed in time: still alive
    assert await second.claim(LEASE) == []


async def test_the_jobs_of_an_expired_process_are_claimed_once(storage, reserve_job, storage_clock):
    dead, second, third = [await joined(storage, name) for name in ("dead", "second", "third")]
    job_ids = [await submitted(storage, reserve_job, dead, user_id=n) for n in range(5)]
    storage_clock.advance(LEASE + 1)
    assert await second.renew() and await third.renew()

    claimed = await second.claim(LEASE, limit=3)
    rest = await third.claim(LEASE)

    assert [job.id for job in claimed] + [job.id for job in rest] == job_ids  # oldest first, each once
    assert await second.claim(LEASE) == [] and await third.claim(LEASE) == []
    assert {await second.owner_of(job_id) for job_id in job_ids} == {"second", "third"}


async def test_a_process_that_left_is_taken_over_at_once(storage, reserve_job):
    leaving, staying = await joined(storage, "leaving"), await joined(storage, "staying")
    job_id = await submitted(storage, reserve_job, leaving)
    await leaving.release()
    assert [job.id for job in await staying.claim(LEASE)] == [job_id]
    assert not await leaving.renew()  # its row is gone


async def test_finished_jobs_are_not_claimed(storage, reserve_job, storage_clock):
    dead, alive = await joined(storage, "dead"), await joined(storage, "alive")
    job_id = await submitted(storage, reserve_job, dead)
    await storage.finish_job(job_id, JobState.CANCELLED)
    storage_clock.advance(LEASE + 1)
    await alive.renew()
    assert await alive.claim(LEASE) == []


async def test_a_job_nobody_took_yet_waits_a_lease_before_it_is_claimed(storage, reserve_job, storage_clock):
    alive = await joined(storage, "alive")
    job = await reserve_job(1)  # its process may be about to submit it
    assert await alive.claim(LEASE) == []
    storage_clock.advance(LEASE + 1)
    await alive.renew()
    assert [j.id for j in await alive.claim(LEASE)] == [job.id]


async def test_a_job_taken_over_before_its_submit_is_not_submitted_by_its_first_process(
    storage, reserve_job, storage_clock
):
    slow, other = await joined(storage, "slow"), await joined(storage, "other")
    job = await reserve_job(1)
    storage_clock.advance(LEASE + 1)
    await other.renew()
    assert [j.id for j in await other.claim(LEASE)] == [job.id]
    storage.owner = slow.process_id
    with pytest.raises(Exception, match="pending"):
        await storage.mark_submitting(job.id)
    assert (await storage.get_job(job.id)).submitted_at is None


async def test_processes_claiming_together_share_the_jobs_out(storage, reserve_job, storage_clock):
    # Several rounds: the race where two processes take the same job needs them to meet on one row.
    alive: list[Leases] = []
    for round_ in range(8):
        dead = await joined(storage, f"dead{round_}")
        job_ids = {await submitted(storage, reserve_job, dead, user_id=100 * round_ + n) for n in range(12)}
        claimers = [await joined(storage, f"p{round_}-{n}") for n in range(3)]
        alive += claimers
        storage_clock.advance(LEASE + 1)
        for process in alive:
            await process.renew()
        batches = await asyncio.gather(*(claimer.claim(LEASE, limit=5) for claimer in claimers))
        ids = [job.id for batch in batches for job in batch]
        assert sorted(ids) == sorted(job_ids), f"round {round_}"  # every job, to one process each


async def test_a_cancel_is_signalled_to_the_other_processes_through_listen_notify(postgres_url, storage_clock):
    listening, notifying = [await Storage.open(postgres_url, clock=storage_clock) for _ in range(2)]
    received: list[str] = []
    arrived = asyncio.Event()

    async def receive(job_id: str) -> None:
        received.append(job_id)
        arrived.set()

    signal = DatabaseCancelSignal(listening)
    try:
        await signal.subscribe(receive)
        await DatabaseCancelSignal(notifying).publish("abcdef012345")
        await asyncio.wait_for(arrived.wait(), 5)
        assert received == ["abcdef012345"]
    finally:
        await signal.close()
        await listening.close()
        await notifying.close()
