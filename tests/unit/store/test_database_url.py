"""DATABASE_URL: parsed and checked, and its password never shown (settings errors, repr, logs)."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logging_setup import configure_logging
from bot.runcomfy.redact import Redactor
from bot.settings import SettingsError, load_settings, secrets_of
from bot.store.dburl import is_postgres_url, mask_url, url_passwords
from bot.store.sql import ParameterError, numbered

TOKENS = {"DISCORD_TOKEN": "discord-secret", "RUNCOMFY_API_TOKEN": "runcomfy-secret"}
URL = "postgresql://bot:hunter2-Very-Secret@db.example:5432/seedream"


def test_database_url_is_read_and_kept_out_of_repr() -> None:
    settings = load_settings({**TOKENS, "DATABASE_URL": URL}, create_dirs=False)
    assert settings.database_url == URL
    assert "hunter2" not in repr(settings)
    # The password is a secret for the log redaction; the rest of the URL stays readable in logs.
    assert "hunter2-Very-Secret" in secrets_of(settings) and URL not in secrets_of(settings)


@pytest.mark.parametrize(
    "value",
    ["mysql://bot:hunter2-Very-Secret@db/seedream", "postgresql://bot:hunter2-Very-Secret@db:port/seedream",
     "postgresql://bot:hunter2-Very-Secret@db:5432/"],
)  # fmt: skip
def test_a_bad_database_url_is_refused_without_showing_its_password(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**TOKENS, "DATABASE_URL": value}, create_dirs=False)
    message = str(err.value)
    assert message.startswith("DATABASE_URL=") and "postgresql://user:password@host:5432/database" in message
    assert "hunter2" not in message and "bot:***@" in message


def test_mask_url_and_passwords() -> None:
    assert mask_url(URL) == "postgresql://bot:***@db.example:5432/seedream"
    assert mask_url("postgresql://bot@db/seedream") == "postgresql://bot@db/seedream"
    assert url_passwords("postgresql://bot:p%40ss@db/x") == ["p%40ss", "p@ss"]
    assert url_passwords("postgresql:///x?host=/tmp") == []
    assert is_postgres_url("postgres://x/y") and is_postgres_url("postgresql://x/y")
    assert not is_postgres_url("data/seedream.db") and not is_postgres_url(None)


def test_any_url_password_is_masked_in_text() -> None:
    text = 'connect to "postgresql://bot:other-pass-123@10.0.0.5/seedream" failed'
    assert Redactor()(text) == 'connect to "postgresql://bot:***@10.0.0.5/seedream" failed'


def test_the_database_password_never_reaches_the_log(tmp_path) -> None:
    settings = load_settings({**TOKENS, "DATABASE_URL": URL, "LOG_LEVEL": "DEBUG"}, create_dirs=False)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging(settings, stream=stream)
    try:
        logging.getLogger("demo").error("cannot connect with %s; password was %s", URL, "hunter2-Very-Secret")
    finally:
        root.setLevel(level)
    out = stream.getvalue()
    assert "hunter2" not in out and "postgresql://bot:***@db.example:5432/seedream" in out


def test_parameters_are_numbered_for_postgresql() -> None:
    assert numbered("SELECT ? , ?", (1, 2)) == ("SELECT $1 , $2", [1, 2])
    sql, values = numbered("UPDATE t SET a = :a, b = :b WHERE a = :a AND c::text = 'x:y?' -- :z ?", {"a": 1, "b": 2})
    assert sql == "UPDATE t SET a = $1, b = $2 WHERE a = $1 AND c::text = 'x:y?' -- :z ?" and values == [1, 2]
    assert numbered("SELECT 'it''s ?'", ()) == ("SELECT 'it''s ?'", [])
    with pytest.raises(ParameterError):
        numbered("SELECT ?", ())
    with pytest.raises(ParameterError):
        numbered("SELECT :a", {"b": 1})
    with pytest.raises(ParameterError):
        numbered("SELECT ?, :a", {"a": 1})
