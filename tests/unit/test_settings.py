import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings, read_environment, secrets_of

TOKENS = {"DISCORD_TOKEN": "discord-secret", "RUNCOMFY_API_TOKEN": "runcomfy-secret"}


def test_defaults_with_tokens(tmp_path):
    s = load_settings({**TOKENS, "DATABASE_PATH": str(tmp_path / "x" / "db.sqlite")})
    assert s.runcomfy_base_url == "https://model-api.runcomfy.net"
    assert s.quota_period == "day"
    assert (tmp_path / "x").is_dir()


@pytest.mark.parametrize("missing", ["DISCORD_TOKEN", "RUNCOMFY_API_TOKEN"])
def test_missing_token_names_the_variable(missing):
    env = {k: v for k, v in TOKENS.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(env, create_dirs=False)


def test_generate_needs_only_runcomfy_token():
    s = load_settings({"RUNCOMFY_API_TOKEN": "runcomfy-token"}, require="generate", create_dirs=False)
    assert s.discord_token == ""


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("QUOTA_DEFAULT_IMAGES", "-1", "whole number >= 0"),
        ("QUOTA_PERIOD", "year", "one of day, week, month"),
        ("RUNCOMFY_BASE_URL", "ftp://x", "URL"),
        ("POLL_INTERVAL_SECONDS", "fast", "number"),
        ("JOB_DEADLINE_SECONDS", "nan", "number >= 1"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG"),
        ("DEV_GUILD_ID", "abc", "digits"),
        ("PRICE_PER_IMAGE_USD", "-0.01", "dollar amount between 0 and 10"),
        ("PRICE_PER_IMAGE_USD", "cheap", "dollar amount between 0 and 10"),
        ("PRICE_PER_IMAGE_USD", "25", "dollar amount between 0 and 10"),
    ],
)
def test_malformed_values_are_named(name, value, expected):
    with pytest.raises(SettingsError) as err:
        load_settings({**TOKENS, name: value}, create_dirs=False)
    assert name in str(err.value) and expected in str(err.value)
    assert f'{name}="{value}" is invalid' in str(err.value)  # the value as typed, quoted
    assert "\n" not in str(err.value)


def test_the_quoted_value_is_kept_to_one_short_line():
    with pytest.raises(SettingsError) as err:
        load_settings({**TOKENS, "QUOTA_PERIOD": "x\ny" + "z" * 200}, create_dirs=False)
    assert str(err.value).startswith('QUOTA_PERIOD="x y') and "\n" not in str(err.value)
    assert len(str(err.value)) < 150


def test_all_missing_tokens_are_named_at_once():
    with pytest.raises(SettingsError) as err:
        load_settings({}, create_dirs=False)
    assert "DISCORD_TOKEN and RUNCOMFY_API_TOKEN are not set" in str(err.value)
    assert "developer portal" in str(err.value) and "API Keys" in str(err.value)


def test_secrets_hidden_from_repr():
    s = load_settings(TOKENS, create_dirs=False)
    assert "secret" not in repr(s)
    assert sorted(secrets_of(s)) == ["discord-secret", "runcomfy-secret"]
    assert isinstance(s, Settings)


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=DEBUG\nQUOTA_PERIOD=week\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    merged = read_environment(env_file)
    assert merged["LOG_LEVEL"] == "ERROR" and merged["QUOTA_PERIOD"] == "week"


def test_python_m_bot_without_tokens_exits_2_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "DISCORD_TOKEN" in proc.stderr


def test_download_timeout_defaults_to_two_minutes_and_is_checked():
    assert load_settings(TOKENS, create_dirs=False).download_timeout_seconds == 120.0
    assert load_settings({**TOKENS, "DOWNLOAD_TIMEOUT_SECONDS": "30"}, create_dirs=False).download_timeout_seconds == 30
    with pytest.raises(SettingsError, match=r"DOWNLOAD_TIMEOUT_SECONDS.*number >= 1"):
        load_settings({**TOKENS, "DOWNLOAD_TIMEOUT_SECONDS": "0"}, create_dirs=False)


def test_price_per_image_is_exact_micro_dollars():
    assert load_settings(TOKENS, create_dirs=False).price_per_image_usd_micros == 30_000
    settings = load_settings({**TOKENS, "PRICE_PER_IMAGE_USD": "0.035"}, create_dirs=False)
    assert settings.price_per_image_usd_micros == 35_000


@pytest.mark.parametrize("name", ["DISCORD_TOKEN", "RUNCOMFY_API_TOKEN"])
def test_a_token_too_short_to_be_real_is_refused_without_repeating_it(name):
    environ = {"DISCORD_TOKEN": "discord-token", "RUNCOMFY_API_TOKEN": "runcomfy-token", name: "y"}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, create_dirs=False)
    message = str(raised.value)
    assert message == f"{name} is invalid: expected the whole token (at least 8 characters; this one has 1)."
