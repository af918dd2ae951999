"""Storage on real database files: jobs, their state machine, settling exactly once, meta, group commit."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from bot.domain.job_state import TERMINAL_STATES, IllegalTransition, JobState, can_transition, check_transition
from bot.store.database import JobNotFound, Storage, StorageError
from bot.store.group_commit import GroupCommit
from tests.fixtures.postgres import SQLITE_ONLY
from tests.fixtures.storage import CHANNEL_ID, GUILD_ID, USER_ID

S = JobState
EXPECTED_MOVES = {
    S.PENDING: {S.SUBMITTED, S.FAILED, S.CANCELLED, S.UNKNOWN},
    S.SUBMITTED: {S.QUEUED, S.RUNNING, S.DELIVERING, S.CANCELLED, S.FAILED, S.EXPIRED},
    S.QUEUED: {S.RUNNING, S.DELIVERING, S.CANCELLED, S.FAILED, S.EXPIRED},
    S.RUNNING: {S.DELIVERING, S.FAILED, S.EXPIRED},
    S.DELIVERING: {S.DELIVERED, S.FAILED, S.EXPIRED},
}


# the state machine


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_every_pair_of_states_follows_the_table(old: JobState, new: JobState) -> None:
    allowed = new in EXPECTED_MOVES.get(old, set()) or (old == new and not old.terminal)
    assert can_transition(old, new) is allowed
    if allowed:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"from {old.value} to {new.value}"):
            check_transition(old, new)


def test_terminal_states() -> None:
    assert {state for state in JobState if state.terminal} == {S.DELIVERED, S.CANCELLED, S.FAILED, S.EXPIRED, S.UNKNOWN}
    assert frozenset(TERMINAL_STATES) == {state for state in JobState if state.terminal}


# jobs


async def test_reserved_job_starts_pending_with_a_short_hex_id(reserve_job, storage: Storage, storage_clock) -> None:
    job = await reserve_job(4, seed=7)
    assert re.fullmatch(r"[0-9a-f]{12}", job.id)
    assert job.state is S.PENDING
    assert (job.guild_id, job.channel_id, job.user_id) == (GUILD_ID, CHANNEL_ID, USER_ID)
    assert job.options == {"prompt": "a lighthouse at dawn", "images": 4, "seed": 7}
    assert (job.images_reserved, job.images_delivered, job.images_charged, job.settled) == (4, 0, 0, False)
    assert job.created_at == job.updated_at == storage_clock.now
    assert job.request_id is job.started_at is job.finished_at is None
    assert await storage.get_job(job.id) == job
    assert await storage.get_job("000000000000") is None


async def test_jobs_survive_closing_and_reopening(reserve_job, storage: Storage, database_url) -> None:
    job = await reserve_job()
    await storage.set_request_id(job.id, "req-1")
    reopened = await Storage.open(database_url)
    try:
        again = await reopened.job_by_request_id("req-1")
        assert again is not None and again.id == job.id and again.state is S.SUBMITTED
    finally:
        await reopened.close()


async def test_set_request_id_moves_pending_to_submitted(reserve_job, storage: Storage) -> None:
    job = await reserve_job()
    submitted = await storage.set_request_id(job.id, "req-abc")
    assert (submitted.state, submitted.request_id) == (S.SUBMITTED, "req-abc")
    assert await storage.job_by_request_id("req-abc") == submitted
    assert await storage.set_request_id(job.id, "req-abc") == submitted  # a retry changes nothing
    with pytest.raises(IllegalTransition):
        await storage.set_request_id(job.id, "req-other")
    other = await reserve_job()
    with pytest.raises(StorageError, match="already belongs"):
        await storage.set_request_id(other.id, "req-abc")
    assert (await storage.get_job(other.id)).state is S.PENDING
    with pytest.raises(JobNotFound):
        await storage.set_request_id("ffffffffffff", "req-x")


async def test_transitions_record_queue_position_and_start_time(reserve_job, storage: Storage, storage_clock) -> None:
    job = await reserve_job()
    await storage.set_request_id(job.id, "r")
    queued = await storage.transition(job.id, S.QUEUED, queue_position=5)
    assert (queued.state, queued.queue_position) == (S.QUEUED, 5)
    storage_clock.advance(2)
    moved_up = await storage.transition(job.id, S.QUEUED, queue_position=2)
    assert moved_up.queue_position == 2 and moved_up.updated_at == storage_clock.now
    assert await storage.transition(job.id, S.QUEUED) == moved_up  # nothing new: no write
    storage_clock.advance(3)
    running = await storage.transition(job.id, S.RUNNING)
    assert running.started_at == storage_clock.now and running.queue_position is None
    storage_clock.advance(3)
    again = await storage.transition(job.id, S.RUNNING)
    assert again.started_at == running.started_at
    delivering = await storage.transition(job.id, S.DELIVERING)
    assert delivering.started_at == running.started_at


async def test_a_job_may_skip_states_between_polls(reserve_job, storage: Storage) -> None:
    job = await reserve_job()
    await storage.set_request_id(job.id, "r")
    delivering = await storage.transition(job.id, S.DELIVERING)
    assert delivering.state is S.DELIVERING and delivering.started_at is None


async def test_illegal_transitions_raise_and_change_nothing(reserve_job, storage: Storage) -> None:
    job = await reserve_job()
    with pytest.raises(IllegalTransition):
        await storage.transition(job.id, S.RUNNING)  # pending must be submitted first
    await storage.set_request_id(job.id, "r")
    running = await storage.transition(job.id, S.RUNNING)
    with pytest.raises(IllegalTransition):
        await storage.transition(job.id, S.QUEUED)
    with pytest.raises(IllegalTransition):
        await storage.finish_job(job.id, S.CANCELLED)  # RunComfy cannot cancel a running request
    assert await storage.get_job(job.id) == running
    with pytest.raises(ValueError, match="finish_job"):
        await storage.transition(job.id, S.FAILED)
    with pytest.raises(ValueError, match="transition"):
        await storage.finish_job(job.id, S.RUNNING)
    with pytest.raises(JobNotFound):
        await storage.transition("ffffffffffff", S.QUEUED)


async def test_finish_charges_what_was_delivered_and_refunds_the_rest(reserve_job, storage, storage_clock) -> None:
    job = await reserve_job(5)
    await storage.set_request_id(job.id, "r")
    await storage.transition(job.id, S.DELIVERING)
    storage_clock.advance(60)
    done = await storage.finish_job(job.id, S.DELIVERED, images_delivered=3)
    assert (done.state, done.images_delivered, done.images_charged, done.settled) == (S.DELIVERED, 3, 3, True)
    assert done.finished_at == storage_clock.now

    more = await reserve_job(2)
    await storage.set_request_id(more.id, "r2")
    await storage.transition(more.id, S.DELIVERING)
    capped = await storage.finish_job(more.id, S.DELIVERED, images_delivered=4)
    assert capped.images_charged == 2  # never more than reserved


async def test_finish_is_exactly_once(reserve_job, storage: Storage, quotas) -> None:
    job = await reserve_job(4)
    await storage.set_request_id(job.id, "r")
    await storage.transition(job.id, S.DELIVERING)
    first = await storage.finish_job(job.id, S.DELIVERED, images_delivered=4)
    second = await storage.finish_job(job.id, S.DELIVERED, images_delivered=4)
    late_failure = await storage.finish_job(job.id, S.FAILED, error="too late")
    assert first == second == late_failure
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved) == (4, 0)


async def test_finish_from_the_job_as_last_seen_reads_it_only_if_it_moved_on(
    reserve_job, storage: Storage, quotas, monkeypatch
) -> None:
    reads = []
    real_get_job = storage.get_job

    async def counting(job_id):
        reads.append(job_id)
        return await real_get_job(job_id)

    monkeypatch.setattr(storage, "get_job", counting)
    job = await reserve_job(3)
    await storage.set_request_id(job.id, "r")
    delivering = await storage.transition(job.id, S.DELIVERING)
    reads.clear()
    done = await storage.finish_job(job.id, S.DELIVERED, images_delivered=3, seen=delivering)
    assert reads == [] and (done.state, done.images_charged, done.settled) == (S.DELIVERED, 3, True)

    # Seen running, but another task moved it to delivering meanwhile: read once, then settled from there.
    other = await reserve_job(2)
    await storage.set_request_id(other.id, "r2")
    running = await storage.transition(other.id, S.RUNNING)
    await storage.transition(other.id, S.DELIVERING)
    reads.clear()
    delivered = await storage.finish_job(other.id, S.DELIVERED, images_delivered=2, seen=running)
    assert reads == [other.id] and (delivered.state, delivered.images_charged) == (S.DELIVERED, 2)

    # Settled since that sighting: finishing again from it changes nothing and charges nothing twice.
    again = await storage.finish_job(other.id, S.DELIVERED, images_delivered=2, seen=running)
    assert again == delivered
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved) == (5, 0)


@pytest.mark.parametrize("final", [S.CANCELLED, S.FAILED])
async def test_unsuccessful_jobs_are_refunded_in_full(reserve_job, storage: Storage, quotas, final) -> None:
    job = await reserve_job(6)
    assert (await quotas.usage(GUILD_ID, USER_ID)).reserved == 6
    await storage.set_request_id(job.id, "r")
    ended = await storage.finish_job(job.id, final, error="RunComfy said no")
    assert (ended.state, ended.images_charged, ended.error, ended.settled) == (final, 0, "RunComfy said no", True)
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved, usage.remaining) == (0, 0, 30)


async def test_concurrent_finishes_from_two_connections_settle_once(reserve_job, storage, database_url) -> None:
    job = await reserve_job(5)
    await storage.set_request_id(job.id, "r")
    await storage.transition(job.id, S.DELIVERING)
    other = await Storage.open(database_url)
    try:
        results = await asyncio.gather(
            *(
                target.finish_job(job.id, final, images_delivered=delivered)
                for _ in range(10)
                for target, final, delivered in ((storage, S.DELIVERED, 5), (other, S.FAILED, 0))
            )
        )
    finally:
        await other.close()
    assert len({(r.state, r.images_charged) for r in results}) == 1
    rows = await storage.fetchall(
        "SELECT sum(charged), sum(reserved) FROM user_usage_days WHERE guild_id = ? AND user_id = ?",
        (GUILD_ID, USER_ID),
    )
    assert tuple(rows[0]) == (results[0].images_charged, 0)


async def test_set_reply_changes_only_given_fields_and_hides_the_token(reserve_job, storage: Storage) -> None:
    job = await reserve_job()
    with_token = await storage.set_reply(
        job.id, interaction_token="secret-token-value", application_id=42, token_created_at=1000.5
    )
    assert (with_token.interaction_token, with_token.application_id, with_token.token_created_at) == (
        "secret-token-value",
        42,
        1000.5,
    )
    with_message = await storage.set_reply(job.id, reply_message_id=9, reply_channel_id=8)
    assert with_message.interaction_token == "secret-token-value"
    assert (with_message.reply_message_id, with_message.reply_channel_id) == (9, 8)
    assert "secret-token-value" not in repr(with_message)
    assert await storage.set_reply(job.id) == with_message
    with pytest.raises(JobNotFound):
        await storage.set_reply("ffffffffffff", reply_message_id=1)


async def test_unfinished_jobs_oldest_first(reserve_job, storage: Storage, quotas, storage_clock) -> None:
    await quotas.set_guild_defaults(GUILD_ID, max_concurrent=10)
    jobs = []
    for _ in range(4):
        jobs.append(await reserve_job(1))
        storage_clock.advance(1)
    await storage.set_request_id(jobs[1].id, "r1")
    await storage.finish_job(jobs[2].id, S.CANCELLED)
    await storage.set_request_id(jobs[3].id, "r3")
    await storage.transition(jobs[3].id, S.RUNNING)
    unfinished = await storage.unfinished_jobs()
    assert [job.id for job in unfinished] == [jobs[0].id, jobs[1].id, jobs[3].id]
    assert [job.state for job in unfinished] == [S.PENDING, S.SUBMITTED, S.RUNNING]


async def test_recent_jobs_newest_first_for_that_member_only(reserve_job, storage: Storage, quotas, storage_clock):
    await quotas.set_guild_defaults(GUILD_ID, max_concurrent=10)
    mine = []
    for _ in range(3):
        mine.append(await reserve_job(1))
        storage_clock.advance(1)
    await reserve_job(1, user_id=USER_ID + 1)
    await reserve_job(1, guild_id=GUILD_ID + 1)
    recent = await storage.recent_jobs(GUILD_ID, USER_ID)
    assert [job.id for job in recent] == [job.id for job in reversed(mine)]
    assert [job.id for job in await storage.recent_jobs(GUILD_ID, USER_ID, limit=2)] == [mine[2].id, mine[1].id]


async def test_meta_values(storage: Storage) -> None:
    assert await storage.get_meta("commands_hash") is None
    await storage.set_meta("commands_hash", "abc")
    await storage.set_meta("commands_hash", "def")
    assert await storage.get_meta("commands_hash") == "def"


async def test_a_failed_transaction_leaves_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        async with storage.transaction() as tx:
            await tx.fetchall("INSERT INTO meta (key, value) VALUES ('k', 'v')")
            raise RuntimeError("boom")
    assert await storage.get_meta("k") is None
    await storage.set_meta("k", "after")  # the connection is usable: no transaction left open
    assert await storage.get_meta("k") == "after"


# group commit


@SQLITE_ONLY
async def test_group_commit_runs_a_burst_in_one_transaction_and_isolates_failures(storage: Storage) -> None:
    batches = GroupCommit(storage)
    calls: dict[str, int] = {}

    def insert(key: str, *, fail: Exception | None = None, refuse: bool = False):
        async def operation(tx):
            calls[key] = calls.get(key, 0) + 1
            if refuse:
                raise LookupError(f"{key} refused")
            await tx.fetchall("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
            if fail is not None:
                raise fail
            return key

        return batches.run(operation, clean=(LookupError,))

    results = await asyncio.gather(
        insert("a"), insert("b", refuse=True), insert("c", fail=RuntimeError("broken")), insert("d"),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == "a" and results[3] == "d"
    assert isinstance(results[1], LookupError) and isinstance(results[2], RuntimeError)
    assert [await storage.get_meta(key) for key in "abcd"] == ["x", None, None, "x"]
    assert calls["a"] == 2 and calls["c"] == 1  # "a" ran again after the batch with "c" rolled back


@SQLITE_ONLY
async def test_group_commit_skips_operations_whose_caller_left(storage: Storage) -> None:
    batches = GroupCommit(storage)
    ran = []

    async def operation(tx):
        ran.append(True)

    async with storage.transaction():  # hold the write lock so the operation waits in the queue
        waiting = asyncio.create_task(batches.run(operation))
        await asyncio.sleep(0.01)
        waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await batches.run(lambda tx: asyncio.sleep(0))
    assert ran == []


@SQLITE_ONLY
async def test_blocking_group_commit_runs_a_burst_in_one_step_and_isolates_failures(storage: Storage) -> None:
    batches = GroupCommit(storage)
    calls: dict[str, int] = {}
    steps = []
    real_run = storage.run_transaction

    async def counting_run(body):
        steps.append(body)
        return await real_run(body)

    storage.run_transaction = counting_run

    def insert(key: str, *, fail: Exception | None = None, refuse: bool = False):
        def operation(connection):
            calls[key] = calls.get(key, 0) + 1
            if refuse:
                raise LookupError(f"{key} refused")
            connection.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
            if fail is not None:
                raise fail
            return key

        return batches.run_sync(operation, clean=(LookupError,))

    results = await asyncio.gather(
        insert("a"), insert("b", refuse=True), insert("c", fail=RuntimeError("broken")), insert("d"), insert("e"),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == "a" and results[3:] == ["d", "e"]
    assert isinstance(results[1], LookupError) and isinstance(results[2], RuntimeError)
    assert [await storage.get_meta(key) for key in "abcde"] == ["x", None, None, "x", "x"]
    # All five in one batch, rolled back by "c"; then the others again, together.
    assert calls == {"a": 2, "b": 2, "c": 1, "d": 1, "e": 1}
    assert len(steps) == 2


@SQLITE_ONLY
async def test_run_transaction_rolls_back_when_its_body_raises(storage: Storage) -> None:
    def body(connection):
        connection.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        raise ValueError("no")

    with pytest.raises(ValueError):
        await storage.run_transaction(body)
    assert await storage.get_meta("k") is None
    assert await storage.run_transaction(lambda connection: connection.execute("SELECT 1").fetchone()[0]) == 1


async def test_a_move_from_the_state_last_seen_needs_no_read_and_is_refused_once_the_job_moved_on(
    reserve_job, storage: Storage
) -> None:
    job = await storage.set_request_id((await reserve_job(2)).id, "req-seen")
    queued = await storage.try_transition(job, S.QUEUED, queue_position=4)
    assert queued is not None and (queued.state, queued.queue_position) == (S.QUEUED, 4)

    cancelled = await storage.finish_job(job.id, S.CANCELLED)  # another task ends it meanwhile
    assert await storage.try_transition(queued, S.QUEUED, queue_position=3) is None
    assert await storage.try_transition(queued, S.RUNNING) is None
    assert await storage.get_job(job.id) == cancelled
    assert await storage.try_transition(cancelled, S.SUBMITTED) is None  # not a move at all: nothing tried
