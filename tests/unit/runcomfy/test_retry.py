"""The backoff policy, the retries of idempotent calls, and the submit rule (never pay twice)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.domain.seedream import build_request
from bot.runcomfy.client import (
    InvalidInputError,
    RateLimitedError,
    RemoteState,
    RunComfyClient,
    ServerError,
    SubmissionOutcomeUnknown,
    TransportError,
)
from bot.runcomfy.retry import RetryPolicy, parse_retry_after
from tests.fixtures.runcomfy import fast_retry_policy

REQUEST = build_request("three paper boats on a pond", 3)


class Recorder:
    """An injectable sleep that records the waits and advances a fake clock instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def recorded_policy(recorder: Recorder, **changes) -> RetryPolicy:
    values = {"max_attempts": 5, "base_delay": 0.5, "max_delay": 8.0, "max_total": 60.0, "jitter": 0.0}
    return RetryPolicy(**{**values, **changes}, sleep=recorder.sleep, clock=recorder.clock)


def client_for(fake, retry: RetryPolicy, **options) -> RunComfyClient:
    return RunComfyClient(fake.token, fake.base_url, retry=retry, **options)


# -- the policy on its own ------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(10_000) == 3.0


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 2.0), (0.5, 1.5), (1.0, 1.0)])
def test_jitter_shortens_by_a_random_share(draw, expected):
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5, random=lambda: draw)
    assert policy.backoff(2) == pytest.approx(expected)


def test_real_jitter_stays_in_range():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5)
    delays = {policy.backoff(3) for _ in range(200)}
    assert all(2.0 <= d <= 4.0 for d in delays) and len(delays) > 1


def test_retry_after_lengthens_the_wait_but_never_shortens_it():
    policy = RetryPolicy(base_delay=1.0, jitter=0.0)
    assert policy.delay(1, retry_after=5.0) == 5.0
    assert policy.delay(1, retry_after=0.1) == 1.0
    assert policy.delay(1, retry_after=None) == 1.0


def test_parse_retry_after():
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0.0
    for unreadable in (None, "", "soon", "nan"):
        assert parse_retry_after(unreadable) is None


async def test_run_stops_after_max_attempts():
    recorder = Recorder()
    calls = 0

    async def always_fails():
        nonlocal calls
        calls += 1
        raise ServerError("down")

    with pytest.raises(ServerError):
        await recorded_policy(recorder, max_attempts=4).run(always_fails, is_retryable=lambda e: True)
    assert calls == 4
    assert recorder.waits == [0.5, 1.0, 2.0]


async def test_run_stops_before_waiting_past_max_total():
    recorder = Recorder()
    calls = 0

    async def always_fails():
        nonlocal calls
        calls += 1
        raise ServerError("down")

    policy = recorded_policy(recorder, max_attempts=100, base_delay=1.0, max_delay=1.0, max_total=3.5)
    with pytest.raises(ServerError):
        await policy.run(always_fails, is_retryable=lambda e: True)
    assert recorder.waits == [1.0, 1.0, 1.0] and calls == 4
    assert recorder.now <= 3.5


async def test_run_does_not_retry_what_is_not_retryable():
    recorder = Recorder()

    async def refused():
        raise InvalidInputError("no")

    with pytest.raises(InvalidInputError):
        await recorded_policy(recorder).run(refused, is_retryable=lambda e: False)
    assert recorder.waits == []


async def test_run_returns_the_first_success_and_reports_retries():
    recorder = Recorder()
    answers = iter([ServerError("a"), ServerError("b"), "ok"])
    seen = []

    async def flaky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = await recorded_policy(recorder).run(
        flaky, is_retryable=lambda e: True, on_retry=lambda n, wait, exc: seen.append((n, wait, exc.message))
    )
    assert result == "ok"
    assert seen == [(1, 0.5, "a"), (2, 1.0, "b")]


# -- idempotent calls over HTTP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["status", "result", "cancel"])
async def test_idempotent_calls_survive_a_5xx_burst(fake_runcomfy, route):
    fake_runcomfy.next_job(manual=True)
    async with client_for(fake_runcomfy, fast_retry_policy(max_attempts=4)) as client:
        rid = (await client.submit(REQUEST)).request_id
        fake_runcomfy.fail_next(route, 503, times=3)
        answer = await getattr(client, route)(rid)
    assert answer.request_id == rid
    assert len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/{route}")) == 4


async def test_retries_are_bounded_by_attempts_and_the_last_error_is_typed(fake_runcomfy):
    fake_runcomfy.fail_next("status", 500, times=50)
    async with client_for(fake_runcomfy, fast_retry_policy(max_attempts=3)) as client:
        with pytest.raises(ServerError) as caught:
            await client.status("abc")
    assert (caught.value.status, caught.value.error_code) == (500, 500001)
    assert len(fake_runcomfy.requests) == 3


async def test_retries_are_bounded_by_total_time(fake_runcomfy):
    fake_runcomfy.fail_next("status", 503, times=1000)
    policy = RetryPolicy(max_attempts=1000, base_delay=0.02, max_delay=0.02, max_total=0.25, jitter=0.0)
    started = time.monotonic()
    async with client_for(fake_runcomfy, policy) as client:
        with pytest.raises(ServerError):
            await client.status("abc")
    elapsed = time.monotonic() - started
    attempts = len(fake_runcomfy.requests)
    assert 2 <= attempts < 15
    assert elapsed < 0.25 + 0.5  # the budget, plus the last attempt's own time


async def test_retry_after_is_honoured(fake_runcomfy):
    recorder = Recorder()
    fake_runcomfy.fail_next("status", 429, retry_after=7)
    async with client_for(fake_runcomfy, recorded_policy(recorder)) as client:
        with pytest.raises(Exception) as caught:
            await client.status("abc")
    assert caught.type.__name__ == "NotFoundError"  # the retry reached the real answer
    assert recorder.waits == [7.0]


async def test_retry_after_as_an_http_date(fake_runcomfy):
    recorder = Recorder()
    when = datetime.now(UTC) + timedelta(seconds=20)
    fake_runcomfy.fail_next("result", 429, retry_after=format_datetime(when, usegmt=True))
    async with client_for(fake_runcomfy, recorded_policy(recorder)) as client:
        with pytest.raises(Exception, match="not found"):
            await client.result("abc")
    assert len(recorder.waits) == 1 and 17.0 <= recorder.waits[0] <= 20.0


async def test_retry_after_beyond_the_budget_gives_up_at_once(fake_runcomfy):
    recorder = Recorder()
    fake_runcomfy.fail_next("status", 429, retry_after=3600)
    async with client_for(fake_runcomfy, recorded_policy(recorder, max_total=60)) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.status("abc")
    assert caught.value.retry_after == 3600.0
    assert recorder.waits == [] and len(fake_runcomfy.requests) == 1


async def test_a_real_short_retry_after_is_waited_for(fake_runcomfy):
    fake_runcomfy.fail_next("status", 429, retry_after=0.2)
    started = time.monotonic()
    async with client_for(fake_runcomfy, fast_retry_policy()) as client:
        with pytest.raises(Exception, match="not found"):
            await client.status("abc")
    gap = fake_runcomfy.requests[1].time - fake_runcomfy.requests[0].time
    assert gap >= 0.19 and time.monotonic() - started >= 0.19


async def test_dropped_connection_on_a_poll_is_retried(fake_runcomfy):
    fake_runcomfy.next_job(manual=True)
    async with client_for(fake_runcomfy, fast_retry_policy()) as client:
        rid = (await client.submit(REQUEST)).request_id
        fake_runcomfy.drop_next("status")
        status = await client.status(rid)
    assert status.state is RemoteState.QUEUED
    assert len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/status")) == 2


async def test_read_timeout_on_a_poll_is_retried(fake_runcomfy):
    async with client_for(fake_runcomfy, fast_retry_policy(), poll_read_timeout=0.1) as client:
        rid = (await client.submit(REQUEST)).request_id
        fake_runcomfy.slow_next("status", 0.5)
        status = await client.status(rid)
    assert status.state is RemoteState.COMPLETED
    assert len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/status")) == 2


async def test_read_timeouts_exhausted_raise_transport_error(fake_runcomfy):
    fake_runcomfy.slow_next("status", 0.5, times=3)
    async with client_for(fake_runcomfy, fast_retry_policy(max_attempts=2), poll_read_timeout=0.05) as client:
        with pytest.raises(TransportError) as caught:
            await client.status("abc")
    assert caught.value.may_have_reached_server is True
    assert "timed out" in caught.value.message


# -- the submit rule ------------------------------------------------------------------------------------------------


async def test_submit_is_retried_when_the_connection_was_refused(fake_runcomfy):
    await fake_runcomfy.pause_api()
    waits = []

    async def reopen_then_wait(seconds: float) -> None:
        waits.append(seconds)
        await fake_runcomfy.resume_api()

    policy = RetryPolicy(base_delay=0.001, jitter=0.0, sleep=reopen_then_wait)
    async with client_for(fake_runcomfy, policy) as client:
        handle = await client.submit(REQUEST)
    assert len(waits) == 1
    assert [s.json["text"] for s in fake_runcomfy.submits] == [REQUEST.text]
    assert list(fake_runcomfy.jobs) == [handle.request_id]


async def test_submit_gives_up_typed_when_the_server_stays_unreachable(fake_runcomfy):
    await fake_runcomfy.pause_api()
    async with client_for(fake_runcomfy, fast_retry_policy(max_attempts=3)) as client:
        with pytest.raises(TransportError) as caught:
            await client.submit(REQUEST)
    assert caught.value.may_have_reached_server is False
    assert not isinstance(caught.value, SubmissionOutcomeUnknown)
    assert fake_runcomfy.jobs == {}


async def test_submit_read_timeout_is_unknown_and_never_resent(fake_runcomfy):
    fake_runcomfy.slow_next("submit", 0.6)
    async with client_for(fake_runcomfy, fast_retry_policy(), submit_read_timeout=0.1) as client:
        with pytest.raises(SubmissionOutcomeUnknown) as caught:
            await client.submit(REQUEST)
    await asyncio.sleep(0.1)
    assert len(fake_runcomfy.submits) == 1
    assert len(fake_runcomfy.jobs) == 1  # the job did start: that is why it must not be sent again
    assert caught.value.status is None and isinstance(caught.value.__cause__, TransportError)


async def test_submit_broken_connection_is_unknown_and_never_resent(fake_runcomfy, runcomfy_client):
    fake_runcomfy.drop_next("submit")
    with pytest.raises(SubmissionOutcomeUnknown):
        await runcomfy_client.submit(REQUEST)
    assert len(fake_runcomfy.submits) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_submit_5xx_is_unknown_with_its_status(fake_runcomfy, runcomfy_client, status):
    fake_runcomfy.fail_next("submit", status, times=5)
    with pytest.raises(SubmissionOutcomeUnknown) as caught:
        await runcomfy_client.submit(REQUEST)
    assert caught.value.status == status
    assert len(fake_runcomfy.submits) == 1


async def test_submit_429_is_rate_limited_and_not_retried(fake_runcomfy, runcomfy_client):
    fake_runcomfy.fail_next("submit", 429, retry_after=2, times=5)
    with pytest.raises(RateLimitedError) as caught:
        await runcomfy_client.submit(REQUEST)
    assert caught.value.retry_after == 2.0
    assert len(fake_runcomfy.submits) == 1 and fake_runcomfy.jobs == {}


@pytest.mark.parametrize(
    "body",
    [{"error_code": 500001, "error_message": "internal"}, b"{not json", {"status": "in_queue"}, {"request_id": "a/b"}],
)
async def test_submit_2xx_without_a_usable_answer_is_unknown(fake_runcomfy, runcomfy_client, body):
    fake_runcomfy.fail_next("submit", 200, body)
    with pytest.raises(SubmissionOutcomeUnknown) as caught:
        await runcomfy_client.submit(REQUEST)
    assert caught.value.status == 200
    assert len(fake_runcomfy.submits) == 1


async def test_submit_accepts_202(fake_runcomfy, runcomfy_client):
    fake_runcomfy.submit_status = 202
    handle = await runcomfy_client.submit(REQUEST)
    assert handle.request_id in fake_runcomfy.jobs
