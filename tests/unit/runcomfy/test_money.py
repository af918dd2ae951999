"""Prices, costs and the out-of-credit answer: the fake RunComfy speaks them, the client reads them defensively."""

from __future__ import annotations

import httpx
import pytest

from bot.domain.seedream import build_request
from bot.runcomfy.client import InsufficientBalanceError, RemoteState

MODEL = "/v1/models/bytedance/seedream-4-0/sequential"
GOOD = {"text": "Generate 2 images: a kite", "sequential_image_generation_options": 2}


@pytest.fixture
async def http(fake_runcomfy):
    headers = {"Authorization": f"Bearer {fake_runcomfy.token}"}
    async with httpx.AsyncClient(base_url=fake_runcomfy.base_url, headers=headers) as client:
        yield client


async def test_fake_model_endpoint_answers_the_price(fake_runcomfy, http):
    answer = await http.get(MODEL)
    assert answer.status_code == 200
    assert answer.json() == {
        "model_id": "bytedance/seedream-4-0/sequential",
        "base_price_usd": 0.03,
        "price_unit": "image",
        "pricing_note": "Billed per output image.",
    }
    assert (await http.get("/v1/models/bytedance/other")).status_code == 404


async def test_fake_result_carries_the_cost_only_when_asked(fake_runcomfy, http):
    fake_runcomfy.next_job(images=1)
    rid = (await http.post(MODEL, json=GOOD)).json()["request_id"]
    assert "cost" not in (await http.get(f"/v1/requests/{rid}/result")).json()
    assert (await http.get(f"/v1/requests/{rid}/result?include_cost=true")).json()["cost"] == 0.03


async def test_fake_out_of_credit_refuses_submits_and_price_with_402(fake_runcomfy, http):
    fake_runcomfy.out_of_credit = True
    for answer in (await http.post(MODEL, json=GOOD), await http.get(MODEL)):
        assert (answer.status_code, answer.json()["error_code"]) == (402, 400002)
    assert fake_runcomfy.jobs == {}
    fake_runcomfy.out_of_credit = False
    assert (await http.post(MODEL, json=GOOD)).status_code == 200


async def test_client_reads_the_price_per_image(runcomfy_client):
    price = await runcomfy_client.model_price()
    assert (price.per_image_micros, price.unit, price.problem) == (30_000, "image", None)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"base_price_usd": -1}, "no usable base_price_usd"),
        ({"base_price_usd": "0.03"}, "no usable base_price_usd"),
        ({"base_price_usd": None}, "no usable base_price_usd"),
        ({"base_price_usd": 1e308}, "no usable base_price_usd"),
        ({"base_price_usd": 50}, "no usable base_price_usd"),
        ({"model_id": "bytedance/other"}, "another model"),
        ({"price_unit": "second"}, "not per image"),
        ({"price_unit": None}, "not per image"),
    ],
)
async def test_client_refuses_unusable_prices(fake_runcomfy, runcomfy_client, changes, problem):
    fake_runcomfy.model_info = fake_runcomfy.model_info | changes
    price = await runcomfy_client.model_price()
    assert price.per_image_micros is None and problem in price.problem


@pytest.mark.parametrize("unit", ["images", "Output", "per image", "per_output", "/image"])
async def test_client_accepts_the_per_image_spellings(fake_runcomfy, runcomfy_client, unit):
    fake_runcomfy.model_info = fake_runcomfy.model_info | {"price_unit": unit, "base_price_usd": 0.035}
    assert (await runcomfy_client.model_price()).per_image_micros == 35_000


async def test_a_nan_price_in_the_raw_json_is_unusable(fake_runcomfy, runcomfy_client):
    fake_runcomfy.model_info = {**fake_runcomfy.model_info, "base_price_usd": float("nan")}  # aiohttp writes NaN
    assert (await runcomfy_client.model_price()).per_image_micros is None


async def test_client_price_call_raises_402_as_insufficient_balance(fake_runcomfy, runcomfy_client):
    fake_runcomfy.out_of_credit = True
    with pytest.raises(InsufficientBalanceError):
        await runcomfy_client.model_price()
    with pytest.raises(InsufficientBalanceError):
        await runcomfy_client.submit(build_request("a kite", 2))


async def test_client_asks_for_the_cost_and_reads_it(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(images=3)
    rid = (await runcomfy_client.submit(build_request("a kite", 4))).request_id
    result = await runcomfy_client.result(rid)
    assert (result.state, len(result.image_urls), result.cost_micros) == (RemoteState.COMPLETED, 3, 90_000)
    assert fake_runcomfy.requests_for(f"/v1/requests/{rid}/result")[-1].query == "include_cost=true"


@pytest.mark.parametrize("cost", [None, -0.5, "0.09", float("inf"), 5000, True, [1]])
async def test_client_ignores_an_unbelievable_cost(fake_runcomfy, runcomfy_client, cost):
    fake_runcomfy.next_job(cost=cost)
    rid = (await runcomfy_client.submit(build_request("a kite", 2))).request_id
    result = await runcomfy_client.result(rid)
    assert result.state is RemoteState.COMPLETED and result.cost_micros is None


async def test_no_cost_before_the_job_ends(fake_runcomfy, runcomfy_client):
    fake_runcomfy.next_job(manual=True, cost=0.5)
    rid = (await runcomfy_client.submit(build_request("a kite", 2))).request_id
    assert (await runcomfy_client.result(rid)).cost_micros is None


async def test_price_note_is_masked_like_every_upstream_text(fake_runcomfy, runcomfy_client):
    fake_runcomfy.model_info = fake_runcomfy.model_info | {"pricing_note": f"token {fake_runcomfy.token}"}
    price = await runcomfy_client.model_price()
    assert fake_runcomfy.token not in price.note
