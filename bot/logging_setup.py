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
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

from bot.runcomfy.redact import MASK as MASK
from bot.runcomfy.redact import Redactor as Redactor
from bot.settings import Settings, secrets_of

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
