"""RunComfy errors, and how an HTTP answer becomes one.

Every error carries `status` (HTTP status or None), `error_code` (RunComfy's numeric code or None), a short
`message` for logs (a server message is cut short and never includes the token) and its `kind`: what went wrong,
as data, for the Discord side and the command line to put in their own words (with the error's numbers, such as
`retry_after` or a download's `limit`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar

import httpx

from bot.runcomfy.redact import Redactor
from bot.runcomfy.retry import parse_retry_after

MAX_SERVER_MESSAGE_CHARS = 200
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class ErrorKind(StrEnum):
    """What went wrong at RunComfy, in terms a member or an operator can act on."""

    FAILED = "failed"  # anything else RunComfy refused
    AUTH = "auth"  # the API token was refused
    OUT_OF_CREDIT = "out_of_credit"
    INVALID_INPUT = "invalid_input"  # the options were not accepted
    NOT_FOUND = "not_found"  # the job (or its output) is gone: expired or unknown
    BUSY = "busy"  # rate limited; `retry_after` seconds when RunComfy said
    SERVER = "server"  # RunComfy's own fault, or an answer that could not be read
    UNREACHABLE = "unreachable"  # no connection, or it broke or timed out
    OUTCOME_UNKNOWN = "outcome_unknown"  # a submit may have reached RunComfy; it was not sent again
    TOO_LARGE = "too_large"  # a download over its `limit` bytes (`size` when announced)
    DOWNLOAD_REFUSED = "download_refused"  # an image link led somewhere the bot does not download from
    INVALID_REQUEST_ID = "invalid_request_id"


class RunComfyError(Exception):
    """Base class: RunComfy did not do what was asked."""

    kind: ClassVar[ErrorKind] = ErrorKind.FAILED

    def __init__(self, message: str, *, status: int | None = None, error_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code

    def __str__(self) -> str:
        details = [f"HTTP {self.status}"] if self.status is not None else []
        if self.error_code is not None:
            details.append(f"code {self.error_code}")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, error_code={self.error_code!r})"
        )


class AuthError(RunComfyError):
    kind = ErrorKind.AUTH


class InsufficientBalanceError(RunComfyError):
    kind = ErrorKind.OUT_OF_CREDIT


class InvalidInputError(RunComfyError):
    kind = ErrorKind.INVALID_INPUT


class NotFoundError(RunComfyError):
    kind = ErrorKind.NOT_FOUND


class RateLimitedError(RunComfyError):
    kind = ErrorKind.BUSY

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, error_code=error_code)
        self.retry_after = retry_after


class ServerError(RunComfyError):
    kind = ErrorKind.SERVER


class TransportError(RunComfyError):
    """RunComfy could not be reached, or the connection failed or timed out."""

    kind = ErrorKind.UNREACHABLE

    def __init__(self, message: str, *, may_have_reached_server: bool) -> None:
        super().__init__(message)
        self.may_have_reached_server = may_have_reached_server


class SubmissionOutcomeUnknown(RunComfyError):
    """A submit may have reached RunComfy but no usable answer came back; it must not be sent again blindly."""

    kind = ErrorKind.OUTCOME_UNKNOWN


class DownloadTooLargeError(RunComfyError):
    kind = ErrorKind.TOO_LARGE

    def __init__(self, message: str, *, limit: int, size: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.size = size


class DownloadRefused(RunComfyError):
    """An output URL (or a redirect) leads somewhere the bot does not download from; never retried."""

    kind = ErrorKind.DOWNLOAD_REFUSED


class InvalidRequestIdError(RunComfyError):
    kind = ErrorKind.INVALID_REQUEST_ID


def is_retryable(exc: Exception) -> bool:
    """Whether an idempotent call that failed with `exc` may be tried again."""
    return isinstance(exc, RateLimitedError | ServerError | TransportError)


def retry_after_of(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitedError) else None


_BY_CODE: dict[int, type[RunComfyError]] = {
    400001: InvalidInputError,
    400002: InsufficientBalanceError,
    400004: AuthError,
    403001: AuthError,
    404001: NotFoundError,
    500001: ServerError,
}
_BY_STATUS: dict[int, type[RunComfyError]] = {
    400: InvalidInputError,
    401: AuthError,
    402: InsufficientBalanceError,
    403: AuthError,
    404: NotFoundError,
    422: InvalidInputError,
}


def check_request_id(request_id: object) -> str:
    """The request id if it is safe to put in a URL, else `InvalidRequestIdError`."""
    if not isinstance(request_id, str) or REQUEST_ID_RE.fullmatch(request_id) is None:
        raise InvalidRequestIdError("request id is malformed")
    return request_id


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with the secrets (and pieces of them, and anything token-shaped) masked, as in the logs."""
    # A shorter "secret" is no real token, and would garble every message.
    return Redactor([secret for secret in secrets if len(secret) >= 6])(text)


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_SERVER_MESSAGE_CHARS:
        text = text[: MAX_SERVER_MESSAGE_CHARS - 1] + "…"
    return text


def _error_code(body: Any) -> int | None:
    if not isinstance(body, Mapping):
        return None
    code = body.get("error_code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def has_error_code(body: Any) -> bool:
    """Whether a (200) JSON body is an error answer: it has a top-level `error_code`."""
    return isinstance(body, Mapping) and body.get("error_code") not in (None, "", 0)


def _server_message(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    for key in ("error_message", "message", "detail", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def error_from_answer(
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    secrets: Iterable[str] = (),
) -> RunComfyError:
    """The typed error for an HTTP answer (an error status, or a 2xx body with `error_code`)."""
    code = _error_code(body)
    server_message = _server_message(body)
    message = _short(redact(server_message, secrets)) if server_message else f"RunComfy answered HTTP {status}"
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("retry-after"))
        return RateLimitedError(message, status=status, error_code=code, retry_after=retry_after)
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code](message, status=status, error_code=code)
    if status in _BY_STATUS:
        return _BY_STATUS[status](message, status=status, error_code=code)
    if status >= 500 or (code is not None and 500000 <= code < 600000):
        return ServerError(message, status=status, error_code=code)
    return RunComfyError(message, status=status, error_code=code)


def malformed_answer(status: int, what: str) -> ServerError:
    """An answer that is not the JSON RunComfy documents: treated like a server fault."""
    return ServerError(f"RunComfy sent an unreadable answer ({what})", status=status)


def transport_error(exc: httpx.HTTPError, *, secrets: Iterable[str] = ()) -> RunComfyError:
    """An httpx failure as a typed error; `may_have_reached_server` is False only when nothing was sent."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return InvalidInputError("unsupported URL scheme")
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    detail = _short(redact(str(exc), secrets))[:120] or type(exc).__name__
    return TransportError(f"connection to RunComfy {kind}: {detail}", may_have_reached_server=not never_sent)


def download_answer_error(status: int, headers: Mapping[str, str], max_bytes: int) -> RunComfyError | None:
    """The error for an output host's answer (status, announced size), or None if the body can be read."""
    if status in (404, 410):
        return NotFoundError("output is gone (expired or unknown)", status=status)
    if status == 429 or status >= 500:
        return error_from_answer(status, None, headers)
    if not 200 <= status < 300:
        return RunComfyError("output host refused the download", status=status)
    length = (headers.get("content-length") or "").strip()
    if length.isdigit() and int(length) > max_bytes:
        return DownloadTooLargeError(
            f"output is {length} bytes, over the {max_bytes} byte limit", limit=max_bytes, size=int(length)
        )
    return None
