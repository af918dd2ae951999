"""The RunComfy client's endpoints against the fake service, over real HTTP."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from bot.domain.seedream import Aspect, Mode, build_request
from bot.runcomfy.client import (
    AuthError,
    CancelOutcome,
    InvalidRequestIdError,
    JobHandle,
    NotFoundError,
    RemoteState,
    RunComfyClient,
)
from tests.fakes.runcomfy import FakeRunComfy, JobPlan
from tests.fixtures.runcomfy import fast_retry_policy

REQUEST = build_request("a lighthouse at dusk", 4, aspect="9:16", seed=42, mode="standard")


async def test_submit_posts_the_input_schema_with_the_bearer_token(fake_runcomfy, runcomfy_client):
    handle = await runcomfy_client.submit(REQUEST)

    assert isinstance(handle, JobHandle)
    [submit] = fake_runcomfy.submits
    assert submit.path == "/v1/models/bytedance/seedream-4-0/sequential"
    assert submit.headers["Authorization"] == f"Bearer {fake_runcomfy.token}"
    assert submit.json == {
        "text": "Generate 4 images: a lighthouse at dusk",
        "sequential_image_generation_options": 4,
        "image_size": Aspect.PORTRAIT_9_16.value,
        "optimize_prompt_options": Mode.STANDARD.value,
        "sequential_image_generation": "auto",
        "seed": 42,
    }
    assert handle.request_id in fake_runcomfy.jobs
    assert handle.status_url == f"{fake_runcomfy.base_url}/v1/requests/{handle.request_id}/status"
    assert handle.result_url.endswith("/result") and handle.cancel_url.endswith("/cancel")


async def test_status_reports_queue_position_only_while_queued(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True, queue_position=7)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    queued = await runcomfy_client.status(rid)
    assert (queued.state, queued.queue_position, queued.raw_state) == (RemoteState.QUEUED, 7, "in_queue")

    await fake_runcomfy.start(rid)
    running = await runcomfy_client.status(rid)
    assert (running.state, running.queue_position) == (RemoteState.RUNNING, None)

    fake_runcomfy.complete(rid)
    done = await runcomfy_client.status(rid)
    assert (done.state, done.queue_position, done.raw_state) == (RemoteState.COMPLETED, None, "completed")
    assert [r.method for r in fake_runcomfy.requests_for(f"/v1/requests/{rid}/status")] == ["GET"] * 3


async def test_queue_position_counts_down_with_time(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(queue_seconds=0.3, queue_position=3, run_seconds=10)
    rid = (await runcomfy_client.submit(REQUEST)).request_id
    positions = []
    while (status := await runcomfy_client.status(rid)).state is RemoteState.QUEUED:
        positions.append(status.queue_position)
        await asyncio.sleep(0.02)
    assert status.state is RemoteState.RUNNING
    assert positions[0] == 3 and positions[-1] == 1
    assert positions == sorted(positions, reverse=True)


async def test_result_before_completion_is_the_current_state_without_images(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    result = await runcomfy_client.result(rid)

    assert (result.state, result.image_urls, result.error) == (RemoteState.QUEUED, (), None)
    assert result.created_at is not None and result.finished_at is None


async def test_result_lists_images_in_order(fake_runcomfy, runcomfy_client):
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    result = await runcomfy_client.result(rid)

    assert result.state is RemoteState.COMPLETED
    assert result.image_urls == tuple(f"{fake_runcomfy.output_url}/outputs/{rid}/{i}.png" for i in range(1, 5))
    assert result.error is None and result.finished_at is not None


async def test_result_with_fewer_images_than_asked(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(images=2)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    result = await runcomfy_client.result(rid)

    assert result.state is RemoteState.COMPLETED and len(result.image_urls) == 2


async def test_result_accepts_a_single_output_image(fake_runcomfy, runcomfy_client):
    fake_runcomfy.output_style = "image"
    rid = (await runcomfy_client.submit(build_request("a fox", 1))).request_id

    result = await runcomfy_client.result(rid)

    assert result.image_urls == (f"{fake_runcomfy.output_url}/outputs/{rid}/1.png",)


@pytest.mark.parametrize("style", ["failed", "completed"])
async def test_failed_job_is_failed_with_its_error(fake_runcomfy, runcomfy_client, style):
    fake_runcomfy.next_job(failure="content policy violation", failure_style=style)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    result = await runcomfy_client.result(rid)

    assert (result.state, result.image_urls, result.error) == (RemoteState.FAILED, (), "content policy violation")


async def test_manual_failure_and_status(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id
    fake_runcomfy.fail(rid, "out of memory")

    assert (await runcomfy_client.status(rid)).state is RemoteState.FAILED
    assert (await runcomfy_client.result(rid)).error == "out of memory"


@pytest.mark.parametrize(
    ("spelling", "state"),
    [("succeeded", RemoteState.COMPLETED), ("SUCCEEDED", RemoteState.COMPLETED), ("Completed", RemoteState.COMPLETED)],
)
async def test_completed_spellings(fake_runcomfy, runcomfy_client, spelling, state):
    fake_runcomfy.spellings = {"completed": spelling}
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    assert (await runcomfy_client.status(rid)).state is state
    result = await runcomfy_client.result(rid)
    assert result.state is state and len(result.image_urls) == 4


async def test_canceled_spelling_and_queued_spelling(fake_runcomfy, runcomfy_client):
    fake_runcomfy.spellings = {"cancelled": "canceled", "in_queue": "queued"}
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    assert (await runcomfy_client.status(rid)).state is RemoteState.QUEUED
    cancelled = await runcomfy_client.cancel(rid)
    assert (cancelled.outcome, cancelled.state) == (CancelOutcome.CANCELLED, RemoteState.CANCELLED)


async def test_unknown_state_is_logged_not_raised(fake_runcomfy, runcomfy_client, caplog):
    fake_runcomfy.spellings = {"in_progress": "warming_up"}
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id
    await fake_runcomfy.start(rid)

    with caplog.at_level(logging.WARNING, logger="bot.runcomfy.client"):
        status = await runcomfy_client.status(rid)

    assert (status.state, status.raw_state) == (RemoteState.UNKNOWN, "warming_up")
    assert not status.state.terminal
    assert [r.levelname for r in caplog.records if "warming_up" in r.getMessage()] == ["WARNING"]

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bot.runcomfy.client"):
        assert (await runcomfy_client.status(rid)).state is RemoteState.UNKNOWN
    assert [r.levelname for r in caplog.records if "warming_up" in r.getMessage()] == ["DEBUG"]  # warned once


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("in_queue", RemoteState.QUEUED),
        ("queued", RemoteState.QUEUED),
        ("IN_QUEUE", RemoteState.QUEUED),
        ("in_progress", RemoteState.RUNNING),
        ("running", RemoteState.RUNNING),
        ("In-Progress", RemoteState.RUNNING),
        ("completed", RemoteState.COMPLETED),
        ("succeeded", RemoteState.COMPLETED),
        ("cancelled", RemoteState.CANCELLED),
        ("canceled", RemoteState.CANCELLED),
        (" Canceled ", RemoteState.CANCELLED),
        ("failed", RemoteState.FAILED),
        ("exploded", RemoteState.UNKNOWN),
        ("", RemoteState.UNKNOWN),
        (None, RemoteState.UNKNOWN),
        (3, RemoteState.UNKNOWN),
    ],
)
def test_remote_state_parse(raw, state):
    assert RemoteState.parse(raw) is state


def test_terminal_states():
    assert {s for s in RemoteState if s.terminal} == {RemoteState.COMPLETED, RemoteState.CANCELLED, RemoteState.FAILED}


async def test_cancel_while_queued_then_again(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id

    first = await runcomfy_client.cancel(rid)
    again = await runcomfy_client.cancel(rid)

    assert (first.outcome, first.state, first.request_id) == (CancelOutcome.CANCELLED, RemoteState.CANCELLED, rid)
    assert again.outcome is CancelOutcome.CANCELLED
    assert fake_runcomfy.state_of(rid) == "cancelled"
    assert (await runcomfy_client.result(rid)).state is RemoteState.CANCELLED
    assert [r.method for r in fake_runcomfy.requests_for(f"/v1/requests/{rid}/cancel")] == ["POST", "POST"]


async def test_cancel_while_running_is_not_cancellable(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(REQUEST)).request_id
    await fake_runcomfy.start(rid)

    outcome = await runcomfy_client.cancel(rid)

    assert (outcome.outcome, outcome.state) == (CancelOutcome.NOT_CANCELLABLE, RemoteState.RUNNING)
    assert fake_runcomfy.state_of(rid) == "in_progress"


async def test_unknown_request_is_not_found(runcomfy_client):
    with pytest.raises(NotFoundError) as caught:
        await runcomfy_client.status("no-such-request")
    assert (caught.value.status, caught.value.error_code) == (404, 404001)


@pytest.mark.parametrize("bad", ["", "a/b", "../status", "x" * 129, "id with space", "é", "a?b=c", None])
async def test_malformed_request_id_never_reaches_a_url(fake_runcomfy, runcomfy_client, bad):
    for call in (runcomfy_client.status, runcomfy_client.result, runcomfy_client.cancel):
        with pytest.raises(InvalidRequestIdError):
            await call(bad)
    assert fake_runcomfy.requests == []


async def test_longest_valid_request_id_is_sent(fake_runcomfy, runcomfy_client):
    rid = "A-z_0" * 25 + "abc"
    with pytest.raises(NotFoundError):
        await runcomfy_client.status(rid)
    assert fake_runcomfy.requests[-1].path == f"/v1/requests/{rid}/status"


async def test_check_token_accepts_the_right_token_and_spends_nothing(fake_runcomfy, runcomfy_client):
    await runcomfy_client.check_token()

    assert fake_runcomfy.submits == [] and fake_runcomfy.jobs == {}
    assert len(fake_runcomfy.requests) == 1 and fake_runcomfy.requests[0].method == "GET"


async def test_check_token_refuses_a_wrong_token(fake_runcomfy):
    async with RunComfyClient("wrong-token-123", fake_runcomfy.base_url, retry=fast_retry_policy()) as client:
        with pytest.raises(AuthError) as caught:
            await client.check_token()
    assert (caught.value.status, caught.value.error_code) == (401, 400004)
    assert len(fake_runcomfy.requests) == 1  # an auth failure is not retried


async def test_wrong_token_on_every_endpoint(fake_runcomfy):
    async with RunComfyClient("wrong-token-123", fake_runcomfy.base_url, retry=fast_retry_policy()) as client:
        with pytest.raises(AuthError):
            await client.submit(REQUEST)
        for call in (client.status, client.result, client.cancel):
            with pytest.raises(AuthError):
                await call("some-request")
    assert fake_runcomfy.jobs == {}


async def test_shared_http_client_is_not_closed(fake_runcomfy):
    async with httpx.AsyncClient() as shared:
        async with RunComfyClient(fake_runcomfy.token, fake_runcomfy.base_url, http=shared) as client:
            await client.check_token()
        assert not shared.is_closed
        response = await shared.get(fake_runcomfy.base_url + "/v1/requests/x/status")
        assert response.status_code == 401  # the shared client carries no token of its own


async def test_owned_http_client_is_closed(fake_runcomfy):
    client = RunComfyClient(fake_runcomfy.token, fake_runcomfy.base_url)
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client._http.get(fake_runcomfy.base_url)


async def test_concurrent_calls_are_capped(fake_runcomfy):
    fake_runcomfy.delays["status"] = 0.05
    active = server_peak = 0
    answer = fake_runcomfy._answer

    async def measured(route, make, request, **options):
        nonlocal active, server_peak
        active += 1
        server_peak = max(server_peak, active)
        try:
            return await answer(route, make, request, **options)
        finally:
            active -= 1

    fake_runcomfy._answer = measured
    async with RunComfyClient(fake_runcomfy.token, fake_runcomfy.base_url, max_concurrent_requests=3) as client:
        results = await asyncio.gather(*(client.status("nope") for _ in range(12)), return_exceptions=True)

    assert all(isinstance(r, NotFoundError) for r in results)
    assert server_peak == 3


def test_repr_hides_the_token():
    client = RunComfyClient("super-secret-token", "http://127.0.0.1:9")
    assert "super-secret-token" not in repr(client)
    asyncio.run(client.aclose())


async def test_default_plan_applies_to_every_job():
    async with FakeRunComfy(plan=JobPlan(images=1)) as fake:
        async with RunComfyClient(fake.token, fake.base_url) as client:
            rid = (await client.submit(REQUEST)).request_id
            assert len((await client.result(rid)).image_urls) == 1
