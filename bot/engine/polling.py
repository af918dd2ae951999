"""The loop that follows one job at RunComfy until it ends, shared by the bot's tracker and the CLI.

It asks for the job's `status` or its `result` as `bot.domain.poll_policy` says, yields a `Sighting` after
every look, waits the policy's pause and stops after yielding the end: the final result, a cancelled status,
or the deadline passed. What a sighting means (a database row, a progress line) is the caller's business, and
so is how it waits (`pause`: the CLI's wait also ends on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bot.domain.poll_policy import Ask, Phase, PollPolicy, RunWatch
from bot.runcomfy.backoff import doubling
from bot.runcomfy.client import JobResult, JobStatus, NotFoundError, RemoteState, RunComfyClient, RunComfyError

_PHASES = {RemoteState.QUEUED: Phase.QUEUED, RemoteState.RUNNING: Phase.RUNNING}


def phase_of(state: RemoteState) -> Phase:
    """The phase of a job RunComfy reports in `state` (not for finished states)."""
    return _PHASES.get(state, Phase.UNKNOWN)


def after_failures(policy: PollPolicy, failures: int) -> float:
    """The pause after `failures` failed looks in a row (the client already retried each)."""
    return doubling(policy.interval, policy.max_interval, failures)


class End(enum.Enum):
    RESULT = "result"  # RunComfy's final answer is in `Sighting.result`
    CANCELLED = "cancelled"  # the status says cancelled (no result is fetched for it)
    DEADLINE = "deadline"  # the job ran past its deadline; RunComfy may still finish it


@dataclass(frozen=True)
class Sighting:
    """What one look at RunComfy saw; `status` is None when the look failed (see `error`)."""

    status: JobStatus | None
    result: JobResult | None = None
    end: End | None = None
    error: RunComfyError | None = None
    failures: int = 0  # looks failed in a row, this one included


async def poll_job(
    client: RunComfyClient,
    request_id: str,
    policy: PollPolicy,
    *,
    run: RunWatch,
    expect: Callable[[], tuple[float | None, float]],
    clock: Callable[[], float],
    deadline: float,
    ask: Ask = Ask.STATUS,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    keep_on_errors: bool = False,
) -> AsyncIterator[Sighting]:
    """Follow `request_id` until it ends or `clock()` passes `deadline`; `expect()` gives the expected run.

    With `keep_on_errors`, a failed look (other than an unknown job, `NotFoundError`) is yielded and retried
    after a growing pause; without it, it is raised.
    """
    failures = 0
    while True:
        try:
            if ask is Ask.RESULT:
                result: JobResult | None = await client.result(request_id)
                assert result is not None
                status = JobStatus(result.request_id, result.state, None, result.state.value)
            else:
                result = None
                status = await client.status(request_id)
            if status.state.terminal and result is None and status.state is not RemoteState.CANCELLED:
                result = await client.result(request_id)
        except NotFoundError:
            raise
        except RunComfyError as exc:
            if not keep_on_errors:
                raise
            failures += 1
            overdue = clock() > deadline
            yield Sighting(None, end=End.DEADLINE if overdue else None, error=exc, failures=failures)
            if overdue:
                return
            await pause(after_failures(policy, failures))
            continue
        failures = 0
        if result is not None and result.state.terminal:
            yield Sighting(status, result, End.RESULT)
            return
        if status.state is RemoteState.CANCELLED:
            yield Sighting(status, end=End.CANCELLED)
            return
        if status.state.terminal:
            ask, delay = Ask.RESULT, policy.front  # the result lags behind the status: look again soon
            yield Sighting(status, result)
        elif clock() > deadline:
            yield Sighting(status, end=End.DEADLINE)
            return
        else:
            run.saw(phase_of(status.state), clock())
            expected, spread = expect()
            poll = policy.next(
                phase_of(status.state),
                position=status.queue_position,
                elapsed=run.elapsed(clock()),
                expected=expected,
                spread=spread,
            )
            ask, delay = poll.ask, poll.delay
            yield Sighting(status)
        await pause(delay)
