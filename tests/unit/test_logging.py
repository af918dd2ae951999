import io
import json
import logging

import pytest

from bot.logging_setup import MASK, JsonFormatter, Redactor, TextFormatter, configure_logging, job_log, log_context
from bot.settings import Settings

DISCORD_TOKEN = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.discord-secret-part-abcdefghij"
RUNCOMFY_TOKEN = "rc_live_5f2b9c0e7a1d4e8b"
SECRETS = (DISCORD_TOKEN, RUNCOMFY_TOKEN)


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ["discord.http", "discord.gateway", "httpx", "httpcore", "aiosqlite", "demo"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def _settings(log_format: str = "text", level: str = "DEBUG") -> Settings:
    return Settings(
        discord_token=DISCORD_TOKEN, runcomfy_api_token=RUNCOMFY_TOKEN, log_format=log_format, log_level=level
    )


def _configured(restore_logging, log_format: str, level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(_settings(log_format, level), stream=stream)
    return stream


def _assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output
    for fragment in ("discord-secret-part", "5f2b9c0e7a1d4e8b"):
        assert fragment not in output


def test_text_line_has_time_level_logger_message_and_context(restore_logging):
    stream = _configured(restore_logging, "text")
    log = job_log(logging.getLogger("demo"), job=12, guild=34, user=56, request_id="req-1")
    log.info("submitted %d images", 4)
    line = stream.getvalue()
    assert line.count("\n") == 1
    time_field, level, logger, rest = line.rstrip("\n").split(" ", 3)
    assert time_field.endswith("Z") and "T" in time_field
    assert (level, logger) == ("INFO", "demo")
    assert rest == "submitted 4 images job=12 guild=34 user=56 request_id=req-1"


def test_json_line_has_the_same_fields(restore_logging):
    stream = _configured(restore_logging, "json")
    log = job_log(logging.getLogger("demo"), job=12, guild=34, user=56, request_id="req-1")
    log.warning("queued at %s", "#3")
    event = json.loads(stream.getvalue())
    assert event["level"] == "WARNING"
    assert event["logger"] == "demo"
    assert event["message"] == "queued at #3"
    assert (event["job"], event["guild"], event["user"], event["request_id"]) == (12, 34, 56, "req-1")
    assert event["time"].endswith("Z")


def test_context_drops_none_and_nests(restore_logging):
    stream = _configured(restore_logging, "json")
    base = job_log(logging.getLogger("demo"), job=7, request_id=None)
    job_log(base, guild=9).info("one")
    base.info("two", extra=log_context(step="poll"))
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["job"] == 7 and first["guild"] == 9 and "request_id" not in first
    assert second["job"] == 7 and second["step"] == "poll" and "guild" not in second


def test_text_quotes_values_with_spaces_and_keeps_one_line(restore_logging):
    stream = _configured(restore_logging, "text")
    logging.getLogger("demo").info("prompt was\nmulti line", extra=log_context(guild="My Server"))
    output = stream.getvalue()
    assert output.count("\n") == 1
    assert "prompt was\\nmulti line" in output
    assert 'guild="My Server"' in output


def _raise_with_secret() -> None:
    raise RuntimeError(f"upstream said: bad token {RUNCOMFY_TOKEN} for Authorization: Bot {DISCORD_TOKEN}")


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(
    "emit",
    [
        pytest.param(lambda log: log.info(f"token is {DISCORD_TOKEN}"), id="message"),
        pytest.param(lambda log: log.info("token %s and %r", RUNCOMFY_TOKEN, DISCORD_TOKEN), id="args"),
        pytest.param(lambda log: log.info("ctx", extra=log_context(token=RUNCOMFY_TOKEN)), id="ctx-extra"),
        pytest.param(lambda log: log.info("plain", extra={"auth": f"Bearer {RUNCOMFY_TOKEN}"}), id="plain-extra"),
        pytest.param(lambda log: job_log(log, secret=DISCORD_TOKEN).info("adapter"), id="adapter"),
        pytest.param(lambda log: log.info("headers %s", {"Authorization": f"Bot {DISCORD_TOKEN}"}), id="header-dict"),
    ],
)
def test_secrets_never_rendered(restore_logging, log_format, emit):
    stream = _configured(restore_logging, log_format)
    emit(logging.getLogger("demo"))
    output = stream.getvalue()
    _assert_no_secret(output)
    assert MASK in output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_masked_in_tracebacks(restore_logging, log_format):
    stream = _configured(restore_logging, log_format)
    try:
        _raise_with_secret()
    except RuntimeError:
        job_log(logging.getLogger("demo"), job=1).exception("job failed")
    output = stream.getvalue()
    _assert_no_secret(output)
    assert "RuntimeError: upstream said: bad token ***" in (
        json.loads(output)["exception"] if log_format == "json" else output
    )
    assert "Traceback" in output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_library_records_are_masked_too(restore_logging, log_format):
    stream = _configured(restore_logging, log_format)
    url = f"https://discord.com/api/v10/webhooks/1234567890/{'i' * 40}/messages/@original"
    logging.getLogger("discord.http").warning("PATCH %s has returned 429", url)
    logging.getLogger("discord.gateway").info("Shard connected with token %s", DISCORD_TOKEN)
    output = stream.getvalue()
    _assert_no_secret(output)
    assert "i" * 40 not in output
    assert "/webhooks/1234567890/***/messages/@original" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123", "Authorization: Bearer ***"),
        ("{'authorization': 'Bot short.tok'}", "{'authorization': 'Bot ***'}"),
        ("Bearer abc123 sent", "Bearer *** sent"),
        (
            "POST /interactions/111/aW50ZXJhY3Rpb24/callback?with_response=1",
            "POST /interactions/111/***/callback?with_response=1",
        ),
        ("GET /webhooks/222/tok-en_1/messages/@original", "GET /webhooks/222/***/messages/@original"),
        ("Bot ready in 3 guilds", "Bot ready in 3 guilds"),
        ("job 12 delivered 4 images", "job 12 delivered 4 images"),
    ],
)
def test_redactor_patterns(text, expected):
    assert Redactor()(text) == expected


def test_redactor_masks_known_secrets_longest_first():
    redact = Redactor(["abcd", "abcdef", ""])
    assert redact("x abcdef y abcd z") == "x *** y *** z"
    assert "abcd" not in repr(redact)


def test_third_party_loggers_are_calm(restore_logging):
    stream = _configured(restore_logging, "text", level="DEBUG")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("discord.http").isEnabledFor(logging.INFO)
    assert logging.getLogger("discord.gateway").isEnabledFor(logging.INFO)
    assert not logging.getLogger("discord.gateway").isEnabledFor(logging.DEBUG)
    logging.getLogger("httpx").info("HTTP Request: GET https://example.invalid/webhooks/1/x")
    assert stream.getvalue() == ""


def test_level_and_reconfigure_replace_the_handler(restore_logging):
    first = _configured(restore_logging, "text", level="WARNING")
    logging.getLogger("demo").info("hidden")
    second = _configured(restore_logging, "json", level="INFO")
    logging.getLogger("demo").info("shown")
    assert first.getvalue() == ""
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["shown"]


def test_formatters_work_without_configure():
    record = logging.LogRecord("demo", logging.ERROR, __file__, 1, "hello %s", ("world",), None)
    record.ctx = {"job": 5}
    assert TextFormatter().format(record).endswith("ERROR demo hello world job=5")
    assert json.loads(JsonFormatter().format(record))["job"] == 5
