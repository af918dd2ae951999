"""Async client for RunComfy's model API (Seedream 4.0 sequential), with typed results and errors.

Retry rule. Status, result, cancel and downloads are idempotent: they are retried on 429, 5xx and transport errors
(connect/read errors, time-outs) within the `RetryPolicy` bounds, then the last error is raised, typed.
A submit is paid, so it is repeated only when the request surely never reached the server: a refused connection or
a connect (or connection-pool) time-out. Anything that fails once sending has begun is never repeated here:
- a write or read time-out, or a broken connection: `SubmissionOutcomeUnknown` (the job may exist);
- a 5xx answer, or a 2xx answer that cannot be read: `SubmissionOutcomeUnknown` carrying the status (a server fault
  says nothing about whether the job was queued);
- a 429 or another 4xx answer (or a 2xx body with a non-5xx `error_code`): the typed error, since the request was
  definitely not accepted; a caller may submit again later (see `RateLimitedError.retry_after`).

The token goes only to the API base URL: downloads of outputs carry no Authorization header (nor any API header).
Downloads go through their own client, fenced (see `download_fence`: https to public addresses only, or the base
URL's exact origin; at most 3 redirects, each checked), and each has a total deadline on top of the read time-out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json as jsonlib
import logging
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from bot.runcomfy.download import OutputDownloader
from bot.runcomfy.download_fence import Resolver
from bot.runcomfy.errors import (
    AuthError,
    DownloadRefused,
    DownloadTooLargeError,
    InsufficientBalanceError,
    InvalidInputError,
    InvalidRequestIdError,
    NotFoundError,
    RateLimitedError,
    RunComfyError,
    ServerError,
    SubmissionOutcomeUnknown,
    TransportError,
    check_request_id,
    error_from_answer,
    has_error_code,
    is_retryable,
    malformed_answer,
    retry_after_of,
    transport_error,
)
from bot.runcomfy.price import ModelPrice, parse_cost, parse_model_price
from bot.runcomfy.redact import Redactor
from bot.runcomfy.results import (
    CancelOutcome,
    CancelResult,
    JobHandle,
    JobResult,
    JobStatus,
    ModelRequest,
    RemoteState,
)
from bot.runcomfy.retry import RetryPolicy
from bot.runcomfy.transport import AiohttpTransport

__all__ = [
    "AuthError", "CancelOutcome", "CancelResult", "DownloadRefused", "DownloadTooLargeError",
    "InsufficientBalanceError", "InvalidInputError", "InvalidRequestIdError", "JobHandle", "JobResult", "JobStatus",
    "ModelPrice", "NotFoundError", "RateLimitedError", "RemoteState", "RunComfyClient", "RunComfyError", "ServerError",
    "SubmissionOutcomeUnknown", "TransportError",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://model-api.runcomfy.net"
MODEL_PATH = "bytedance/seedream-4-0/sequential"  # Seedream 4.0, sequential (a set of related images)
SUBMIT_PATH = f"/v1/models/{MODEL_PATH}"


# Well-formed, but no job has it: asking its status spends nothing and proves the token is accepted.
TOKEN_CHECK_REQUEST_ID = "00000000-0000-0000-0000-000000000000"
MAX_STATE_CHARS = 40  # an unknown status is shown (CLI progress), so it is cut short
def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_text(value: Any, *, limit: int = 300) -> str | None:
    if isinstance(value, dict):
        value = value.get("error_message") or value.get("message") or value.get("detail")
    if isinstance(value, str) and value.strip():
        text = " ".join(value.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"
    return None


def _image_urls(output: Any) -> tuple[str, ...]:
    """`output.images` in order, then `output.image` if it is not already among them."""
    if not isinstance(output, dict):
        return ()
    urls: list[str] = []
    images = output.get("images")
    for item in images if isinstance(images, list) else ():
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url and url not in urls:
            urls.append(url)
    single = output.get("image")
    if isinstance(single, str) and single and single not in urls:
        urls.append(single)
    return tuple(urls)


class RunComfyClient:
    """One client per process; safe to share between tasks. Concurrent API calls are capped by a semaphore."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        max_concurrent_requests: int = 16,
        connect_timeout: float = 10.0,
        submit_read_timeout: float = 90.0,
        poll_read_timeout: float = 20.0,
        secrets: Iterable[str] = (),
        download_timeout: float = 120.0,
        resolver: Resolver | None = None,
    ) -> None:
        if not token:
            raise ValueError("a RunComfy API token is required")
        self._token = token
        # Every text RunComfy sends back is masked with these before anyone sees it (it may echo a token).
        self._secrets = (token, *(secret for secret in secrets if secret))
        self._redact = Redactor(self._secrets)
        self._base_url = base_url.rstrip("/")
        self._owns_http = http is None
        # aiohttp carries the API calls: far less CPU per request than httpx (see bot.http_transport).
        self._fast = AiohttpTransport(max_connections=max_concurrent_requests) if http is None else None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False, transport=self._fast)
        self._retry = retry or RetryPolicy()
        self._semaphore = asyncio.Semaphore(max_concurrent_requests)
        # pool=None: waiting for a pooled connection is bounded by the semaphore and the other calls' time-outs.
        self._submit_timeout = httpx.Timeout(connect_timeout, read=submit_read_timeout, pool=None)
        self._poll_timeout = httpx.Timeout(connect_timeout, read=poll_read_timeout, pool=None)
        self._downloader = OutputDownloader(
            self._base_url,
            retry=self._retry,
            timeout=self._poll_timeout,
            total_timeout=download_timeout,
            secrets=self._secrets,
            resolver=resolver,
        )

    def __repr__(self) -> str:
        return f"RunComfyClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> RunComfyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._downloader.aclose()
        if self._owns_http:
            await self._http.aclose()

    async def submit(self, request: ModelRequest) -> JobHandle:
        """Queue a job. Never repeated once it may have reached RunComfy (see the module docstring)."""
        payload = request.to_input()

        async def attempt() -> dict[str, Any]:
            return await self._call("POST", SUBMIT_PATH, self._submit_timeout, json=payload)

        try:
            body = await self._retry.run(
                attempt, is_retryable=lambda exc: isinstance(exc, TransportError) and not exc.may_have_reached_server
            )
        except TransportError as exc:
            if not exc.may_have_reached_server:
                raise
            raise SubmissionOutcomeUnknown(f"submit sent but not confirmed: {exc.message}") from exc
        except ServerError as exc:
            raise SubmissionOutcomeUnknown(
                f"submit answered by a server fault: {exc.message}", status=exc.status, error_code=exc.error_code
            ) from exc
        try:
            request_id = self._own_request_id(body.get("request_id"))
        except InvalidRequestIdError:
            raise SubmissionOutcomeUnknown("submit answer has no usable request_id", status=200) from None
        log.debug("runcomfy submit request_id=%s images=%d", request_id, request.images)
        urls = (_optional_str(body.get(key)) for key in ("status_url", "result_url", "cancel_url"))
        return JobHandle(request_id, *urls)

    async def status(self, request_id: str) -> JobStatus:
        request_id = check_request_id(request_id)
        body = await self._idempotent("GET", f"/v1/requests/{request_id}/status")
        raw = body.get("status")
        state = RemoteState.parse(raw)
        position = body.get("queue_position")
        if state is not RemoteState.QUEUED or isinstance(position, bool) or not isinstance(position, int):
            position = None
        log.debug("runcomfy status request_id=%s state=%s position=%s", request_id, state.value, position)
        shown = _error_text(raw, limit=MAX_STATE_CHARS) or ""
        return JobStatus(request_id, state, position, self._redact(shown))

    async def result(self, request_id: str) -> JobResult:
        request_id = check_request_id(request_id)
        body = await self._idempotent("GET", f"/v1/requests/{request_id}/result?include_cost=true")
        state = RemoteState.parse(body.get("status"))
        images = self._showable(_image_urls(body.get("output")))
        error = _error_text(body.get("error"))
        error = self._redact(error) if error is not None else None
        if state is RemoteState.COMPLETED and not images and error is not None:
            state = RemoteState.FAILED
        if state is RemoteState.FAILED and error is None:
            error = "the job failed at RunComfy"
        if state is not RemoteState.COMPLETED:
            images = ()
        log.debug("runcomfy result request_id=%s state=%s images=%d", request_id, state.value, len(images))
        created, finished = _optional_str(body.get("created_at")), _optional_str(body.get("finished_at"))
        cost = parse_cost(body) if state.terminal else None
        if state.terminal and "cost" in body and cost is None:
            log.warning("runcomfy result request_id=%s has an unusable cost; it is estimated instead", request_id)
        return JobResult(request_id, state, images, error, created, finished, cost)

    async def model_price(self) -> ModelPrice:
        """The Seedream model's quoted price; free. Raises like any call (402 when the account has no credit)."""
        body = await self._idempotent("GET", f"/v1/models/{MODEL_PATH}")
        price = parse_model_price(body, MODEL_PATH)
        redacted: dict[str, Any] = {k: self._redact(v) for k in ("unit", "note") if (v := getattr(price, k))}
        price = dataclasses.replace(price, **redacted)
        log.debug("runcomfy price per_image_micros=%s problem=%s", price.per_image_micros, price.problem)
        return price

    async def cancel(self, request_id: str) -> CancelResult:
        """Cancel a queued job; a running or finished one answers NOT_CANCELLABLE.

        A cancel refused with a 4xx status (409 "not now", say) is answered from the job's status instead: the
        state then tells whether it is running (cannot be stopped) or still queued (the cancel failed).
        """
        request_id = check_request_id(request_id)
        try:
            body = await self._idempotent("POST", f"/v1/requests/{request_id}/cancel")
        except RunComfyError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            log.info("runcomfy cancel request_id=%s refused (%s); reading its status", request_id, exc)
            status = await self.status(request_id)
            cancelled = status.state is RemoteState.CANCELLED
            outcome = CancelOutcome.CANCELLED if cancelled else CancelOutcome.NOT_CANCELLABLE
            return CancelResult(request_id, outcome, status.state)
        state = RemoteState.parse(body.get("status"))
        raw_outcome = body.get("outcome")
        raw_outcome = raw_outcome.strip().lower() if isinstance(raw_outcome, str) else ""
        if raw_outcome in ("cancelled", "canceled"):
            outcome = CancelOutcome.CANCELLED
        elif raw_outcome == "not_cancellable":
            outcome = CancelOutcome.NOT_CANCELLABLE
        else:
            outcome = CancelOutcome.CANCELLED if state is RemoteState.CANCELLED else CancelOutcome.NOT_CANCELLABLE
        if outcome is CancelOutcome.CANCELLED and state is RemoteState.UNKNOWN:
            state = RemoteState.CANCELLED
        log.debug("runcomfy cancel request_id=%s outcome=%s state=%s", request_id, outcome.value, state.value)
        return CancelResult(request_id, outcome, state)

    async def check_token(self) -> None:
        """Raise `AuthError` if the token is refused; spends nothing (asks the status of a job that cannot exist)."""
        try:
            await self.status(TOKEN_CHECK_REQUEST_ID)
        except (NotFoundError, InvalidInputError):
            pass  # the server got past authentication to look the id up
        log.debug("runcomfy check_token accepted")

    async def download(self, url: str, *, max_bytes: int, dest: pathlib.Path | None = None) -> bytes | pathlib.Path:
        """Fetch an output: bytes, or the file `dest` (see `OutputDownloader.download`)."""
        return await self._downloader.download(url, max_bytes=max_bytes, dest=dest)

    async def _idempotent(self, method: str, path: str) -> dict[str, Any]:
        async def attempt() -> dict[str, Any]:
            return await self._call(method, path, self._poll_timeout)

        return await self._retry.run(attempt, is_retryable=is_retryable, retry_after=retry_after_of)

    async def _call(self, method: str, path: str, timeouts: httpx.Timeout, json: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with self._semaphore:
                if self._fast is None:
                    response = await self._http.request(
                        method, self._base_url + path, json=json, headers=headers, timeout=timeouts
                    )
                    return self._decode(response.status_code, response.headers, response.content)
                body = None
                if json is not None:
                    body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
                    headers["Content-Type"] = "application/json"
                status, answer_headers, content = await self._fast.call(
                    method, self._base_url + path, headers=headers, body=body, timeouts=timeouts
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, secrets=self._secrets) from exc
        return self._decode(status, answer_headers, content)

    def _own_request_id(self, value: Any) -> str:
        """A request id fit to use and show: well-formed, and not carrying any piece of a secret."""
        request_id = check_request_id(value)
        if self._redact(request_id) != request_id:
            raise InvalidRequestIdError("request id is malformed")
        return request_id

    def _showable(self, urls: tuple[str, ...]) -> tuple[str, ...]:
        """The output URLs that carry no piece of a secret (an image may be linked publicly by its URL)."""
        kept = tuple(url for url in urls if self._redact(url) == url)
        if len(kept) < len(urls):
            log.warning("RunComfy listed %d output URL(s) carrying a secret; they are ignored", len(urls) - len(kept))
        return kept

    def _decode(self, status: int, headers: Mapping[str, str], content: bytes) -> dict[str, Any]:
        try:
            body: Any = jsonlib.loads(content)
        except ValueError:
            body = None
        secrets = self._secrets
        if not 200 <= status < 300:
            raise error_from_answer(status, body, headers, secrets=secrets)
        if not isinstance(body, dict):
            raise malformed_answer(status, "not a JSON object")
        if has_error_code(body):
            raise error_from_answer(status, body, headers, secrets=secrets)
        return body
