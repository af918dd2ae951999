"""Every RunComfy error: how HTTP answers map to typed errors, and what the errors say."""

from __future__ import annotations

import dataclasses

import pytest

from bot.domain.seedream import build_request
from bot.runcomfy import client as runcomfy
from bot.runcomfy.client import (
    AuthError,
    DownloadRefused,
    DownloadTooLargeError,
    InsufficientBalanceError,
    InvalidInputError,
    InvalidRequestIdError,
    NotFoundError,
    RateLimitedError,
    RunComfyClient,
    RunComfyError,
    ServerError,
    SubmissionOutcomeUnknown,
    TransportError,
)
from bot.runcomfy.errors import ErrorKind, check_request_id, error_from_answer, is_retryable
from tests.fixtures.runcomfy import fast_retry_policy

REQUEST = build_request("a red kite over hills", 2)
ALL_ERRORS = [
    RunComfyError("m"),
    AuthError("m"),
    InsufficientBalanceError("m"),
    InvalidInputError("m"),
    NotFoundError("m"),
    RateLimitedError("m"),
    ServerError("m"),
    TransportError("m", may_have_reached_server=False),
    SubmissionOutcomeUnknown("m"),
    DownloadTooLargeError("m", limit=1),
    InvalidRequestIdError("m"),
    DownloadRefused("m"),
]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error_code": 400004, "error_message": "bad token"}, AuthError),
        (403, {"error_code": 403001, "error_message": "no permission"}, AuthError),
        (401, None, AuthError),
        (403, None, AuthError),
        (400, {"error_code": 400004}, AuthError),
        (402, None, InsufficientBalanceError),
        (400, {"error_code": 400002}, InsufficientBalanceError),
        (400, None, InvalidInputError),
        (422, {"detail": "text too long"}, InvalidInputError),
        (400, {"error_code": 400001}, InvalidInputError),
        (404, None, NotFoundError),
        (410, {"error_code": 404001}, NotFoundError),
        (429, None, RateLimitedError),
        (500, None, ServerError),
        (502, "<html>bad gateway</html>", ServerError),
        (503, {"error_code": 500001}, ServerError),
        (200, {"error_code": 500001, "error_message": "internal"}, ServerError),
        (200, {"error_code": 400002}, InsufficientBalanceError),
        (200, {"error_code": "400004"}, AuthError),
        (418, {"error_code": 123}, RunComfyError),
    ],
)
def test_answer_mapping(status, body, expected):
    error = error_from_answer(status, body)
    assert type(error) is expected
    assert error.status == status


def test_known_error_code_wins_over_status():
    error = error_from_answer(400, {"error_code": 404001, "error_message": "expired"})
    assert isinstance(error, NotFoundError) and error.error_code == 404001 and error.message == "expired"


def test_rate_limited_reads_retry_after_seconds_and_dates():
    assert error_from_answer(429, None, {"retry-after": "7"}).retry_after == 7.0
    dated = error_from_answer(429, None, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated.retry_after == 0.0  # a date in the past means "now"
    assert error_from_answer(429, None, {}).retry_after is None


def test_server_message_is_cut_short_and_redacted():
    secret = "tok-abcdef-123456"
    error = error_from_answer(400, {"error_message": f"token {secret} rejected " + "x" * 1000}, secrets=[secret])
    assert secret not in str(error) and secret not in repr(error)
    assert len(error.message) <= 200


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_has_status_code_message_and_a_kind_but_no_wording(error):
    assert error.status is None and error.error_code is None and error.message == "m"
    assert isinstance(error.kind, ErrorKind)
    assert not hasattr(error, "user_message")  # the Discord side and the command line word the kind


def test_each_kind_of_error_has_its_own_kind():
    kinds = [error.kind for error in ALL_ERRORS]
    assert len(set(kinds)) == len(kinds) == len(ErrorKind)


def test_the_numbers_travel_with_the_error():
    assert error_from_answer(429, None, {"retry-after": "7"}).kind is ErrorKind.BUSY
    too_large = DownloadTooLargeError("m", limit=1000, size=2000)
    assert (too_large.kind, too_large.limit, too_large.size) == (ErrorKind.TOO_LARGE, 1000, 2000)


def test_str_and_repr_carry_status_and_code():
    error = ServerError("boom", status=503, error_code=500001)
    assert str(error) == "boom (HTTP 503, code 500001)"
    assert repr(error) == "ServerError(message='boom', status=503, error_code=500001)"


def test_errors_are_reexported_from_the_client_module():
    for error in ALL_ERRORS:
        assert getattr(runcomfy, type(error).__name__) is type(error)


def test_retryable_errors():
    assert {type(e).__name__ for e in ALL_ERRORS if is_retryable(e)} == {
        "RateLimitedError",
        "ServerError",
        "TransportError",
    }


@pytest.mark.parametrize("good", ["a", "A-z_09", "x" * 128, "4f3c2b1a-0000-4d8e-9a1b-0123456789ab"])
def test_request_id_accepted(good):
    assert check_request_id(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 129, "a b", "a/b", "a\nb", "ä", 12, None])
def test_request_id_refused(bad):
    with pytest.raises(InvalidRequestIdError):
        check_request_id(bad)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, None, AuthError),
        (403, None, AuthError),
        (402, None, InsufficientBalanceError),
        (400, {"error_code": 400002, "error_message": "Insufficient balance"}, InsufficientBalanceError),
        (422, None, InvalidInputError),
        (400, None, InvalidInputError),
        (404, None, NotFoundError),
        (429, None, RateLimitedError),
        (500, None, ServerError),
        (503, None, ServerError),
        (200, {"error_code": 500001, "error_message": "internal"}, ServerError),
        (200, {"error_code": 400004, "error_message": "token expired"}, AuthError),
    ],
)
async def test_typed_errors_over_http(fake_runcomfy, runcomfy_client, status, body, expected):
    fake_runcomfy.fail_next("status", status, body, times=10)
    with pytest.raises(expected) as caught:
        await runcomfy_client.status("some-id")
    assert caught.value.status == status
    assert fake_runcomfy.token not in str(caught.value) + repr(caught.value) + caught.value.kind


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"not json {"), (200, b""), (200, ["a", "list"]), (200, "a JSON string"), (502, b"<html>gateway</html>")],
)
async def test_unreadable_answers_are_server_errors(fake_runcomfy, runcomfy_client, status, body):
    fake_runcomfy.fail_next("result", status, body, times=10)
    with pytest.raises(ServerError):
        await runcomfy_client.result("some-id")


async def test_submit_typed_4xx_errors_create_no_job(fake_runcomfy, runcomfy_client):
    fake_runcomfy.fail_next("submit", 402)
    with pytest.raises(InsufficientBalanceError) as caught:
        await runcomfy_client.submit(REQUEST)
    assert caught.value.error_code == 400002
    assert fake_runcomfy.jobs == {} and len(fake_runcomfy.submits) == 1


async def test_submit_refused_by_the_input_schema(fake_runcomfy, runcomfy_client):
    request = dataclasses.replace(build_request("a cat", 2), text="y" * 601)  # past the local check

    with pytest.raises(InvalidInputError) as caught:
        await runcomfy_client.submit(request)

    assert caught.value.status == 422
    assert "text" in caught.value.message
    assert fake_runcomfy.jobs == {}


async def test_wrong_token_is_never_echoed(fake_runcomfy):
    token = "sk-live-very-secret-987654"
    fake_runcomfy.fail_next("status", 401, {"error_code": 400004, "error_message": f"key {token} is expired"})
    async with RunComfyClient(token, fake_runcomfy.base_url, retry=fast_retry_policy()) as client:
        with pytest.raises(AuthError) as caught:
            await client.status("abc")
    assert token not in str(caught.value) and token not in repr(caught.value)
