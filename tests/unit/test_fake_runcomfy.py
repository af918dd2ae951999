"""The fake RunComfy itself follows the documented API (raw HTTP, no client), so the client tests mean something."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.fakes.runcomfy import FakeRunComfy, JobPlan, make_png

SUBMIT = "/v1/models/bytedance/seedream-4-0/sequential"
GOOD = {"text": "Generate 2 images: a kite", "sequential_image_generation_options": 2}


@pytest.fixture
async def http(fake_runcomfy):
    headers = {"Authorization": f"Bearer {fake_runcomfy.token}"}
    async with httpx.AsyncClient(base_url=fake_runcomfy.base_url, headers=headers) as client:
        yield client


async def test_outputs_share_the_api_origin_unless_asked_for_a_host_of_their_own(fake_runcomfy, runcomfy_token):
    assert fake_runcomfy.base_url.startswith("http://127.0.0.1:")
    assert fake_runcomfy.output_url == fake_runcomfy.base_url
    async with FakeRunComfy(token=runcomfy_token, separate_output_host=True) as separate:
        assert separate.output_url.startswith("http://127.0.0.1:") and separate.output_url != separate.base_url


async def test_submit_answer_shape(fake_runcomfy, http):
    response = await http.post(SUBMIT, json=GOOD)
    body = response.json()
    rid = body["request_id"]
    assert response.status_code == 200
    assert body == {
        "request_id": rid,
        "status": "in_queue",
        "status_url": f"{fake_runcomfy.base_url}/v1/requests/{rid}/status",
        "result_url": f"{fake_runcomfy.base_url}/v1/requests/{rid}/result",
        "cancel_url": f"{fake_runcomfy.base_url}/v1/requests/{rid}/cancel",
    }
    assert fake_runcomfy.jobs[rid].input == GOOD


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "x" * 601},
        {"text": 5},
        {**GOOD, "sequential_image_generation_options": 0},
        {**GOOD, "sequential_image_generation_options": 16},
        {**GOOD, "sequential_image_generation_options": "3"},
        {**GOOD, "sequential_image_generation_options": True},
        {**GOOD, "image_size": "16:9"},
        {**GOOD, "optimize_prompt_options": "turbo"},
        {**GOOD, "seed": 1.5},
        {**GOOD, "seed": "7"},
        ["not", "an", "object"],
    ],
)
async def test_submit_validates_against_the_input_schema(fake_runcomfy, http, body):
    response = await http.post(SUBMIT, json=body)
    assert response.status_code == 422
    assert response.json()["error_message"].startswith("Invalid input")
    assert fake_runcomfy.jobs == {}


async def test_submit_accepts_the_largest_valid_body(fake_runcomfy, http):
    body = {
        "text": "x" * 600,
        "sequential_image_generation_options": 15,
        "image_size": "3024:1296 (21:9)",
        "optimize_prompt_options": "standard",
        "seed": 0,
        "sequential_image_generation": "auto",
    }
    assert (await http.post(SUBMIT, json=body)).status_code == 200


async def test_unknown_model_and_unreadable_body(fake_runcomfy, http):
    wrong = await http.post("/v1/models/bytedance/other-model", json=GOOD)
    assert (wrong.status_code, wrong.json()["error_code"]) == (400, 400001)
    garbage = await http.post(SUBMIT, content=b"{oops", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422


async def test_api_requires_the_bearer_token_but_outputs_do_not(fake_runcomfy, http):
    rid = (await http.post(SUBMIT, json=GOOD)).json()["request_id"]
    async with httpx.AsyncClient() as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": fake_runcomfy.token}):
            refused = await anonymous.get(f"{fake_runcomfy.base_url}/v1/requests/{rid}/status", headers=headers)
            assert (refused.status_code, refused.json()["error_code"]) == (401, 400004)
        image = await anonymous.get(f"{fake_runcomfy.output_url}/outputs/{rid}/1.png")
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"


async def test_result_shapes(fake_runcomfy, http):
    fake_runcomfy.next_job(manual=True)
    rid = (await http.post(SUBMIT, json=GOOD)).json()["request_id"]
    pending = (await http.get(f"/v1/requests/{rid}/result")).json()
    assert pending["status"] == "in_queue" and pending["queue_position"] == 1 and "output" not in pending
    fake_runcomfy.complete(rid)
    done = (await http.get(f"/v1/requests/{rid}/result")).json()
    assert done["status"] == "completed" and len(done["output"]["images"]) == 2
    assert done["created_at"].endswith("Z") and done["finished_at"].endswith("Z")


async def test_manual_jobs_wait_for_their_controller(fake_runcomfy, http):
    fake_runcomfy.next_job(manual=True, queue_position=4)
    rid = (await http.post(SUBMIT, json=GOOD)).json()["request_id"]
    await asyncio.sleep(0.05)
    assert fake_runcomfy.state_of(rid) == "in_queue"
    await fake_runcomfy.start(rid)
    await asyncio.sleep(0.05)
    assert fake_runcomfy.state_of(rid) == "in_progress"
    fake_runcomfy.complete(rid, images=1)
    assert fake_runcomfy.state_of(rid) == "completed"
    assert len(fake_runcomfy.jobs[rid].image_urls) == 1


async def test_timed_jobs_queue_then_run_then_finish(fake_runcomfy, http):
    fake_runcomfy.next_job(queue_seconds=0.1, run_seconds=0.1)
    rid = (await http.post(SUBMIT, json=GOOD)).json()["request_id"]
    assert fake_runcomfy.state_of(rid) == "in_queue"
    await asyncio.sleep(0.12)
    assert fake_runcomfy.state_of(rid) == "in_progress"
    await asyncio.sleep(0.1)
    assert fake_runcomfy.state_of(rid) == "completed"


async def test_delivers_never_more_than_asked(fake_runcomfy, http):
    fake_runcomfy.next_job(images=9)
    rid = (await http.post(SUBMIT, json=GOOD)).json()["request_id"]
    assert fake_runcomfy.state_of(rid) == "completed"
    assert len(fake_runcomfy.jobs[rid].image_urls) == 2


async def test_injected_errors_are_consumed_in_order(fake_runcomfy, http):
    fake_runcomfy.fail_next("status", 503, times=2)
    fake_runcomfy.fail_next("status", 429, retry_after=3)
    answers = [await http.get("/v1/requests/x/status") for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 429, 404]
    assert answers[0].json()["error_code"] == 500001 and answers[2].json()["error_message"] == "Too many requests"
    assert answers[2].headers["Retry-After"] == "3"
    with pytest.raises(ValueError):
        fake_runcomfy.fail_next("nowhere", 500)


async def test_records_method_path_headers_json_and_time(fake_runcomfy, http):
    await http.post(SUBMIT, json=GOOD)
    await http.get("/v1/requests/abc/status")
    submit, status = fake_runcomfy.requests
    assert (submit.site, submit.method, submit.path, submit.json) == ("api", "POST", SUBMIT, GOOD)
    assert submit.headers["authorization"] == f"Bearer {fake_runcomfy.token}"
    assert (status.method, status.json) == ("GET", None)
    assert submit.time <= status.time
    assert fake_runcomfy.submits == [submit]
    assert fake_runcomfy.requests_for("/v1/requests/") == [status]
    assert fake_runcomfy.counts["submit"] == 1 and fake_runcomfy.counts["status"] == 1


@pytest.mark.parametrize("size", [1_000, 64_000, 1_500_000])
def test_png_bytes_are_valid_and_about_the_size_asked(size):
    data = make_png(size)
    assert abs(len(data) - size) <= max(200, size // 1000)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == "RGB"
    assert make_png(size) is data  # cached


async def test_a_thousand_jobs_without_recording():
    async with FakeRunComfy(plan=JobPlan(queue_seconds=0.01), record=False) as fake:
        headers = {"Authorization": f"Bearer {fake.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(1000):
                async with session.post(fake.base_url + SUBMIT, json=GOOD) as response:
                    assert response.status == 200
        await asyncio.sleep(0.02)
        assert len(fake.jobs) == 1000 and fake.requests == [] and fake.counts["submit"] == 1000
        assert {fake.state_of(rid) for rid in fake.jobs} == {"completed"}
