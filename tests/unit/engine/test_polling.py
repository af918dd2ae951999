"""The poll loop the tracker and the CLI share: what it asks, what it yields, how long it waits, when it stops."""

from __future__ import annotations

import pytest

from bot.domain.poll_policy import Ask, Phase, PollPolicy, RunWatch
from bot.engine.polling import End, Sighting, after_failures, phase_of, poll_job
from bot.runcomfy.client import NotFoundError, RemoteState, ServerError
from tests.unit.engine.test_tracker import ScriptedRunComfy, result, status

POLICY = PollPolicy()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


async def follow(runcomfy: ScriptedRunComfy, clock: Clock, **options) -> list[Sighting]:
    options.setdefault("deadline", 3600.0)
    seen = []
    async for sighting in poll_job(
        runcomfy,  # type: ignore[arg-type]
        "req",
        POLICY,
        run=RunWatch(POLICY.front),
        expect=lambda: (30.0, 0.1),
        clock=clock,
        pause=clock.pause,
        **options,
    ):
        seen.append(sighting)
    return seen


async def test_a_job_is_followed_by_status_while_queued_and_by_result_while_running() -> None:
    clock = Clock()
    runcomfy = ScriptedRunComfy(
        [status(RemoteState.QUEUED, 3), status(RemoteState.QUEUED, 1), status(RemoteState.RUNNING)],
        [result(RemoteState.RUNNING), result(RemoteState.COMPLETED, 2)],
    )
    seen = await follow(runcomfy, clock)

    assert runcomfy.calls == ["status", "status", "status", "result", "result"]
    assert [s.status.state for s in seen if s.status] == [RemoteState.QUEUED] * 2 + [RemoteState.RUNNING] * 2 + [
        RemoteState.COMPLETED
    ]
    assert [s.end for s in seen] == [None, None, None, None, End.RESULT]
    assert seen[-1].result is not None and seen[-1].result.image_urls
    assert clock.pauses[:2] == [POLICY.queued(3), POLICY.queued(1)]
    assert len(clock.pauses) == 4  # no pause after the end


async def test_a_result_that_lags_behind_the_status_is_asked_again_soon() -> None:
    clock = Clock()
    runcomfy = ScriptedRunComfy(
        [status(RemoteState.COMPLETED)], [result(RemoteState.RUNNING), result(RemoteState.COMPLETED, 1)]
    )
    seen = await follow(runcomfy, clock)

    assert runcomfy.calls == ["status", "result", "result"]
    assert [s.end for s in seen] == [None, End.RESULT]
    assert clock.pauses == [POLICY.front]


async def test_a_cancelled_status_ends_without_asking_for_the_result() -> None:
    runcomfy = ScriptedRunComfy([status(RemoteState.CANCELLED)])
    seen = await follow(runcomfy, Clock())

    assert runcomfy.calls == ["status"]
    assert [s.end for s in seen] == [End.CANCELLED]


async def test_a_job_past_its_deadline_ends_the_loop() -> None:
    clock = Clock()
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED, 5)])
    seen = await follow(runcomfy, clock, deadline=60.0)

    assert seen[-1].end is End.DEADLINE
    assert seen[-1].status == status(RemoteState.QUEUED, 5)
    assert 60.0 < clock.now <= 60.0 + POLICY.max_interval


async def test_a_running_job_is_asked_with_result_from_the_start() -> None:
    runcomfy = ScriptedRunComfy([status(RemoteState.QUEUED)], [result(RemoteState.COMPLETED, 1)])
    seen = await follow(runcomfy, Clock(), ask=Ask.RESULT)

    assert runcomfy.calls == ["result"]
    assert seen[-1].end is End.RESULT


async def test_failed_looks_are_yielded_and_retried_after_growing_pauses_when_asked() -> None:
    clock = Clock()
    down = ServerError("502")
    runcomfy = ScriptedRunComfy([down, down, status(RemoteState.CANCELLED)])
    seen = await follow(runcomfy, clock, keep_on_errors=True)

    assert [(s.error, s.failures) for s in seen] == [(down, 1), (down, 2), (None, 0)]
    assert clock.pauses == [after_failures(POLICY, 1), after_failures(POLICY, 2)]
    assert clock.pauses[1] > clock.pauses[0]


async def test_failed_looks_past_the_deadline_end_the_loop() -> None:
    clock = Clock()
    runcomfy = ScriptedRunComfy([ServerError("502")])
    seen = await follow(runcomfy, clock, keep_on_errors=True, deadline=30.0)

    assert seen[-1].end is End.DEADLINE and seen[-1].status is None


async def test_a_failed_look_is_raised_unless_asked_to_keep_on() -> None:
    with pytest.raises(ServerError):
        await follow(ScriptedRunComfy([ServerError("502")]), Clock())


async def test_an_unknown_job_is_raised_even_when_keeping_on() -> None:
    with pytest.raises(NotFoundError):
        await follow(ScriptedRunComfy([NotFoundError("gone")]), Clock(), keep_on_errors=True)


def test_failures_back_off_up_to_the_longest_interval():
    assert [after_failures(POLICY, n) for n in (1, 2, 3, 4, 5)] == [4.0, 8.0, 15.0, 15.0, 15.0]


def test_phases_of_remote_states():
    assert [phase_of(s) for s in (RemoteState.QUEUED, RemoteState.RUNNING, RemoteState.UNKNOWN)] == [
        Phase.QUEUED,
        Phase.RUNNING,
        Phase.UNKNOWN,
    ]
