"""Logging: one line per event in text or JSON, with job context, and with every secret masked.

Callers attach context with `job_log`:

    log = job_log(logger, job=job.id, guild=guild_id, user=user_id, request_id=request_id)
    log.info("submitted")

Masking happens on the final rendered line (message, arguments, context and tracebacks alike), for the
project's records and for those of discord.py, httpx and every other library.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

from bot.settings import Settings, secrets_of

MASK = "***"

# Library loggers that would otherwise be noisy or print request URLs (which can carry webhook tokens).
QUIET_LOGGERS = {
    "discord.http": logging.WARNING,
    "discord.gateway": logging.INFO,
    "discord.client": logging.INFO,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncio": logging.WARNING,
}


def _mask_header(match: re.Match[str]) -> str:
    prefix, scheme = match.group(1), match.group(2)
    return f"{prefix}{scheme} {MASK}" if scheme else prefix + MASK


_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # An Authorization header however rendered: `Authorization: Bot x`, `'authorization': 'Bearer x'`.
    (re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)(?:(bearer|bot)\s+)?[^\s'",;}]+"""), _mask_header),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    # "Bot <token>" outside a header: only when what follows looks like a token, so "Bot ready" stays readable.
    (re.compile(r"\b(Bot)\s+[A-Za-z0-9._-]{20,}"), r"\1 " + MASK),
    # A Discord bot token anywhere: three base64url parts joined by dots.
    (re.compile(r"\b[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}\b"), MASK),
    # Interaction and webhook tokens in URL paths.
    (re.compile(r"(/(?:webhooks|interactions)/[^/\s?#'\"]+/)[^/\s?#'\"]+"), r"\1" + MASK),
)


# Any run of this many characters of a secret is masked too, so a token cut short or split still does not show.
SECRET_PIECE_CHARS = 16


class Redactor:
    """Replaces known secret values (and any 16-character piece of them) and token-shaped strings with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        n = SECRET_PIECE_CHARS
        self._pieces = frozenset(s[i : i + n] for s in self._secrets for i in range(len(s) - n + 1))
        # Every piece contains one of these aligned half-pieces: only where one occurs is a piece looked for.
        half = n // 2
        self._anchors = frozenset(
            s[i : i + half] for s in self._secrets if len(s) >= n for i in range(0, len(s) - half + 1, half)
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._pieces:
            text = self._mask_pieces(text)
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def _mask_pieces(self, text: str) -> str:
        n, half = SECRET_PIECE_CHARS, SECRET_PIECE_CHARS // 2
        starts: set[int] = set()
        for anchor in self._anchors:
            at = text.find(anchor)
            while at != -1:
                starts.update(i for i in range(max(0, at - half), at + 1) if text[i : i + n] in self._pieces)
                at = text.find(anchor, at + 1)
        if not starts:
            return text
        spans: list[list[int]] = []
        for start in sorted(starts):
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + n
            else:
                spans.append([start, start + n])
        for start, end in reversed(spans):
            text = text[:start] + MASK + text[end:]
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


# Attributes every LogRecord has; anything else on a record came from `extra=` and is rendered as context.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "ctx"}


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The context of a record: its `ctx` mapping, then any other `extra=` fields."""
    context: dict[str, Any] = {}
    ctx = getattr(record, "ctx", None)
    if isinstance(ctx, Mapping):
        context.update(ctx)
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            context.setdefault(key, value)
    return {key: value for key, value in context.items() if value is not None}


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _text_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def _exception_text(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.render(record))

    def render(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class TextFormatter(_RedactingFormatter):
    """`2025-01-31T12:00:00.123Z INFO bot.engine.tracker submitted job=12 guild=34 user=56 request_id=abc`."""

    def render(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        fields = [_timestamp(record.created), record.levelname, record.name, message]
        fields += [f"{key}={_text_value(value)}" for key, value in record_context(record).items()]
        line = " ".join(fields)
        exception = self._exception_text(record)
        return f"{line}\n{exception}" if exception else line


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, logger, message, the context fields, and `exception` if any."""

    def render(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_context(record).items():
            event.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        exception = self._exception_text(record)
        if exception:
            event["exception"] = exception
        # Mask each value before encoding, so escaping cannot split a secret; the whole line is masked again after.
        event = {key: self.redactor(value) if isinstance(value, str) else value for key, value in event.items()}
        return json.dumps(event, ensure_ascii=False, default=str)


class ContextAdapter(logging.LoggerAdapter[Any]):
    """A logger that adds its context (job, guild, user, request_id, ...) to every record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.get("extra") or {})
        extra["ctx"] = {**(self.extra or {}), **(extra.get("ctx") or {})}
        kwargs["extra"] = extra
        return msg, kwargs


def job_log(logger: logging.Logger | logging.LoggerAdapter[Any], **context: Any) -> ContextAdapter:
    """`logger` with `context` attached; fields whose value is None are left out. Adapters nest."""
    if isinstance(logger, logging.LoggerAdapter):
        context = {**(logger.extra or {}), **context}
        logger = logger.logger
    return ContextAdapter(logger, {key: value for key, value in context.items() if value is not None})


def log_context(**context: Any) -> dict[str, Any]:
    """For one call: `logger.info("done", extra=log_context(job=3))`."""
    return {"ctx": {key: value for key, value in context.items() if value is not None}}


def make_formatter(settings: Settings) -> logging.Formatter:
    redactor = Redactor(secrets_of(settings))
    return JsonFormatter(redactor) if settings.log_format == "json" else TextFormatter(redactor)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Send every log record to stderr (or `stream`) in the configured format, secrets masked.

    Calling it again replaces the handler it installed before; other handlers are left alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_seedream_handler", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._seedream_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(make_formatter(settings))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name, level in QUIET_LOGGERS.items():
        # Never louder than asked: LOG_LEVEL=ERROR keeps discord.gateway at ERROR too.
        logging.getLogger(name).setLevel(max(level, logging.getLevelName(settings.log_level)))
    logging.captureWarnings(True)


def for_job(logger: logging.Logger | logging.LoggerAdapter[Any], job: Any) -> ContextAdapter:
    """`logger` carrying a job's id, guild, user and RunComfy request_id."""
    return job_log(
        logger,
        job=job.id,
        guild=job.guild_id,
        user=job.user_id,
        request_id=getattr(job, "request_id", None),
    )
