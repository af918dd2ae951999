"""Every setting, read from the environment (and `.env`, which the environment overrides).

A missing or malformed setting raises `SettingsError` with one line naming the variable and what
is expected. Secrets are kept out of `repr()` so a settings object can be logged safely.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.domain.money import parse_usd
from bot.runcomfy.price import MAX_PRICE_PER_IMAGE_MICROS
from bot.store.dburl import check_url, mask_url, url_passwords

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
QUOTA_PERIODS = ("day", "week", "month")
SYNC_COMMANDS_CHOICES = ("auto", "yes", "no")
MAX_SHARD_COUNT = 65_536


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line fit to print."""


@dataclass(frozen=True)
class Settings:
    discord_token: str = field(default="", repr=False)
    runcomfy_api_token: str = field(default="", repr=False)
    runcomfy_base_url: str = "https://model-api.runcomfy.net"
    discord_api_base_url: str = "https://discord.com/api/v10"
    database_path: Path = Path("data/seedream.db")
    database_url: str = field(default="", repr=False)  # PostgreSQL instead of the SQLite file; has a password
    heartbeat_path: Path = Path("data/heartbeat")
    log_level: str = "INFO"
    log_format: str = "text"
    dev_guild_id: int | None = None
    quota_default_images: int = 30
    quota_period: str = "day"
    quota_max_concurrent_jobs: int = 2
    poll_interval_seconds: float = 2.0
    poll_max_interval_seconds: float = 15.0
    job_deadline_seconds: float = 1800.0
    runcomfy_max_concurrent_requests: int = 16
    download_max_bytes: int = 40 * 1024 * 1024
    download_concurrency: int = 4
    download_timeout_seconds: float = 120.0
    status_edit_interval_seconds: float = 2.0
    status_queue_edit_interval_seconds: float = 15.0
    price_per_image_usd_micros: int = 30_000  # PRICE_PER_IMAGE_USD, used while RunComfy quotes no usable price

    @property
    def database(self) -> str | Path:
        """What `Storage.open` takes: DATABASE_URL if set (PostgreSQL), else DATABASE_PATH (SQLite)."""
        return self.database_url or self.database_path
    shard_count: int | None = None  # None: as many shards as Discord recommends, all in this process
    shard_ids: tuple[int, ...] | None = None  # None: every shard of shard_count
    sync_commands: str = "auto"  # auto: the process running shard 0 syncs
    lease_seconds: float = 60.0  # a process silent this long is taken for dead and its jobs taken over

    @property
    def shards_text(self) -> str:
        """This process's shards, for logs and the processes table: "0,1 of 4", "all of 4" or "all"."""
        if self.shard_count is None:
            return "all"
        if self.shard_ids is None:
            return f"all of {self.shard_count}"
        return ",".join(str(i) for i in self.shard_ids) + f" of {self.shard_count}"

    @property
    def syncs_commands(self) -> bool:
        """Whether this process registers the slash commands: exactly one process of a sharded bot should."""
        if self.sync_commands != "auto":
            return self.sync_commands == "yes"
        return self.shard_ids is None or 0 in self.shard_ids


MIN_TOKEN_CHARS = 8  # real Discord and RunComfy tokens are far longer; a shorter one is a typo or a cut-off paste


def _token(value: str) -> str:
    if len(value) < MIN_TOKEN_CHARS:
        raise ValueError(f"the whole token (at least {MIN_TOKEN_CHARS} characters; this one has {len(value)})")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("a URL starting with http:// or https://")
    return value.rstrip("/")


def _at_least(convert: Callable[[str], float], minimum: float, expected: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = convert(value)
        except ValueError:
            raise ValueError(expected) from None
        if not math.isfinite(number) or number < minimum:
            raise ValueError(expected)
        return number

    return parse


def _int_min(minimum: int) -> Callable[[str], int]:
    return _at_least(int, minimum, f"a whole number >= {minimum}")


def _float_min(minimum: float) -> Callable[[str], float]:
    return _at_least(float, minimum, f"a number >= {minimum:g}")


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normalised = value.upper() if upper else value.lower()
        if normalised not in options:
            raise ValueError("one of " + ", ".join(options))
        return normalised

    return parse


def _usd_per_image(value: str) -> int:
    try:
        return parse_usd(value, name="PRICE_PER_IMAGE_USD", maximum=MAX_PRICE_PER_IMAGE_MICROS)
    except ValueError:
        raise ValueError("a dollar amount between 0 and 10, like 0.03") from None


def _optional_snowflake(value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ValueError("a Discord server id (digits only) or empty")
    return int(value)


def _shard_ids(value: str) -> tuple[int, ...]:
    """`0,1,2` or ranges like `0-3,8`; checked against SHARD_COUNT in `_check_shards`."""
    expected = "shard numbers separated by commas, like 0,1 or 0-3"
    ids: list[int] = []
    for part in value.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(expected)
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last >= MAX_SHARD_COUNT:
            raise ValueError(expected)
        ids.extend(range(first, last + 1))
    return tuple(ids)


# environment variable -> (field name, parser)
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DISCORD_TOKEN": ("discord_token", _token),
    "RUNCOMFY_API_TOKEN": ("runcomfy_api_token", _token),
    "RUNCOMFY_BASE_URL": ("runcomfy_base_url", _url),
    "DISCORD_API_BASE_URL": ("discord_api_base_url", _url),
    "DATABASE_PATH": ("database_path", Path),
    "DATABASE_URL": ("database_url", check_url),
    "HEARTBEAT_PATH": ("heartbeat_path", Path),
    "LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "LOG_FORMAT": ("log_format", _choice(LOG_FORMATS)),
    "DEV_GUILD_ID": ("dev_guild_id", _optional_snowflake),
    "QUOTA_DEFAULT_IMAGES": ("quota_default_images", _int_min(0)),
    "QUOTA_PERIOD": ("quota_period", _choice(QUOTA_PERIODS)),
    "QUOTA_MAX_CONCURRENT_JOBS": ("quota_max_concurrent_jobs", _int_min(1)),
    "POLL_INTERVAL_SECONDS": ("poll_interval_seconds", _float_min(0.05)),
    "POLL_MAX_INTERVAL_SECONDS": ("poll_max_interval_seconds", _float_min(0.05)),
    "JOB_DEADLINE_SECONDS": ("job_deadline_seconds", _float_min(1)),
    "RUNCOMFY_MAX_CONCURRENT_REQUESTS": ("runcomfy_max_concurrent_requests", _int_min(1)),
    "DOWNLOAD_MAX_BYTES": ("download_max_bytes", _int_min(1024)),
    "DOWNLOAD_CONCURRENCY": ("download_concurrency", _int_min(1)),
    "DOWNLOAD_TIMEOUT_SECONDS": ("download_timeout_seconds", _float_min(1)),
    "STATUS_EDIT_INTERVAL_SECONDS": ("status_edit_interval_seconds", _float_min(0)),
    "STATUS_QUEUE_EDIT_INTERVAL_SECONDS": ("status_queue_edit_interval_seconds", _float_min(0)),
    "PRICE_PER_IMAGE_USD": ("price_per_image_usd_micros", _usd_per_image),
    "SHARD_COUNT": ("shard_count", _at_least(int, 1, f"a whole number from 1 to {MAX_SHARD_COUNT}")),
    "SHARD_IDS": ("shard_ids", _shard_ids),
    "SYNC_COMMANDS": ("sync_commands", _choice(SYNC_COMMANDS_CHOICES)),
    "LEASE_SECONDS": ("lease_seconds", _float_min(5)),
}

REQUIRED_FOR = {
    "bot": ("DISCORD_TOKEN", "RUNCOMFY_API_TOKEN"),
    "generate": ("RUNCOMFY_API_TOKEN",),
    "none": (),
}

SETTING_NAMES = tuple(_PARSERS)
QUOTED_VALUE_CHARS = 60

_HINTS = {
    "DISCORD_TOKEN": "the bot token from the Discord developer portal (Bot > Reset Token)",
    "RUNCOMFY_API_TOKEN": "your RunComfy API key (RunComfy profile > API Keys)",
}


def read_environment(env_file: str | os.PathLike[str] | None = ".env") -> dict[str, str]:
    """`.env` values overlaid by the real environment (the environment wins)."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    require: str = "bot",
    create_dirs: bool = True,
) -> Settings:
    """Build `Settings` from `environ` (default: `.env` + the process environment)."""
    env = read_environment() if environ is None else environ
    values: dict[str, Any] = {}
    for name, (attr, parse) in _PARSERS.items():
        raw = env.get(name)
        if raw is None:
            continue
        raw = raw.strip()
        if raw == "" and attr not in ("dev_guild_id",):
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            if parse is _token:  # a secret: never repeated, not even a short one
                raise SettingsError(f"{name} is invalid: expected {exc}.") from None
            shown = _quoted(mask_url(raw) if name == "DATABASE_URL" else raw)
            raise SettingsError(f"{name}={shown} is invalid: expected {exc}.") from None
    missing = [name for name in REQUIRED_FOR[require] if not values.get(_PARSERS[name][0])]
    if missing:
        names = " and ".join(missing)
        hints = " and ".join(_HINTS[name] for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise SettingsError(f"{names} {verb} not set: put {hints} in .env or the environment.")
    settings = Settings(**values)
    if settings.poll_max_interval_seconds < settings.poll_interval_seconds:
        raise SettingsError("POLL_MAX_INTERVAL_SECONDS is invalid: expected a number >= POLL_INTERVAL_SECONDS.")
    _check_shards(settings)
    if create_dirs:
        for path in (settings.database_path, settings.heartbeat_path):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SettingsError(
                    f"DATABASE_PATH/HEARTBEAT_PATH folder {path.parent} cannot be created: {exc.strerror}."
                ) from None
    return settings


def _check_shards(settings: Settings) -> None:
    count, ids = settings.shard_count, settings.shard_ids
    if count is not None and count > MAX_SHARD_COUNT:
        raise SettingsError(f"SHARD_COUNT={count} is invalid: expected a whole number from 1 to {MAX_SHARD_COUNT}.")
    if ids is None:
        return
    if count is None:
        raise SettingsError("SHARD_IDS is set but SHARD_COUNT is not: set SHARD_COUNT to the number of shards in all.")
    outside = sorted({i for i in ids if i >= count})
    if outside:
        raise SettingsError(
            f"SHARD_IDS is invalid: shards are numbered 0..{count - 1} (SHARD_COUNT={count}); "
            f"{_listed(outside)} outside that range."
        )
    repeated = sorted(i for i, times in Counter(ids).items() if times > 1)
    if repeated:
        raise SettingsError(f"SHARD_IDS is invalid: {_listed(repeated)} listed more than once.")
    if len(ids) < count and not settings.database_url:
        # Another process would have to run the other shards, and an SQLite database serves one process only.
        raise SettingsError(
            f"SHARD_IDS runs {len(ids)} of the {count} shards: the others would need processes of their own, "
            "which an SQLite database cannot serve: set DATABASE_URL to a PostgreSQL database they share, or leave "
            "SHARD_IDS empty to run every shard in this process."
        )


def _listed(numbers: list[int]) -> str:
    shown = ",".join(str(n) for n in numbers[:5]) + (",…" if len(numbers) > 5 else "")
    return f"shard {shown} is" if len(numbers) == 1 else f"shards {shown} are"


def _quoted(value: str) -> str:
    """The value as typed, on one line and bounded (only non-secret settings can be invalid)."""
    value = " ".join(value.split())
    if len(value) > QUOTED_VALUE_CHARS:
        value = value[: QUOTED_VALUE_CHARS - 1] + "…"
    return '"' + value.replace('"', '\\"') + '"'


def secrets_of(settings: Settings) -> list[str]:
    """The secret values, for log redaction: the tokens, and the password in DATABASE_URL (not the whole URL)."""
    found = [getattr(settings, f.name) for f in fields(settings) if not f.repr and getattr(settings, f.name)]
    if settings.database_url:
        found = [value for value in found if value != settings.database_url] + url_passwords(settings.database_url)
    return found
