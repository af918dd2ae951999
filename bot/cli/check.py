"""`seedream-bot check`: are the settings valid, the database usable, and both tokens accepted?

Prints one line per check (`ok   settings`, `FAIL discord: token rejected (401) ...`, `skip ...`) and exits 0 only
if every check passed. The database is the SQLite file's folder (writable?), or with DATABASE_URL the PostgreSQL
database (reachable? which schema version?). Nothing is spent: Discord is asked who the bot is, RunComfy the
status of a job that cannot exist, and the model's price (a free call) is read. No token is ever printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import urllib.parse
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.domain.money import format_usd
from bot.logging_setup import Redactor, configure_logging
from bot.runcomfy.client import AuthError, InsufficientBalanceError, RunComfyClient, RunComfyError, TransportError
from bot.runcomfy.retry import RetryPolicy
from bot.settings import Settings, SettingsError, load_settings, secrets_of

EXIT_OK = 0
EXIT_FAILED = 1

DISCORD_TIMEOUT = 10.0
RUNCOMFY_TIMEOUT = 30.0
USER_AGENT = "DiscordBot (https://github.com/seedream-bot/seedream-bot, 0.1.0)"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool | None  # None: skipped, because an earlier problem makes the check impossible
    detail: str = ""
    refused: bool = False  # the service refused the token itself (not: could not be asked)

    def line(self) -> str:
        status = "skip" if self.ok is None else ("ok  " if self.ok else "FAIL")
        return f"{status} {self.name}: {self.detail}" if self.detail else f"{status} {self.name}"


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _token_shape_problem(name: str, token: str) -> str | None:
    if token.lower().startswith(("bot ", "bearer ")):
        return f"{name} starts with '{token.split()[0]} ': put the token alone"
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        return f"{name} contains spaces or characters a token cannot have: copy it again"
    return None


def check_settings(environ: Mapping[str, str] | None = None) -> tuple[CheckResult, Settings | None]:
    """The settings check, and the settings to go on with (those that parse, even if a token is missing)."""
    try:
        return CheckResult("settings", True), load_settings(environ, require="bot", create_dirs=False)
    except SettingsError as exc:
        failed = CheckResult("settings", False, str(exc))
    try:
        return failed, load_settings(environ, require="none", create_dirs=False)
    except SettingsError:
        return failed, None


def check_folder(name: str, path: Path) -> CheckResult:
    """Whether the folder of `path` exists (or can be made) and takes new files, and `path` itself is writable."""
    folder = path.absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".seedream-check-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return CheckResult(name, False, f"{folder} is not writable ({exc.strerror or type(exc).__name__})")
    if path.exists():
        if not path.is_file():
            return CheckResult(name, False, f"{path} exists but is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            return CheckResult(name, False, f"{path} exists but cannot be read and written by this user")
    return CheckResult(name, True, f"{folder} is writable")


def _retry_after(response: httpx.Response) -> str:
    value = response.headers.get("retry-after", "")
    try:
        return f"{float(value):.0f} s"
    except ValueError:
        return "a moment"


async def check_discord(token: str, base_url: str, *, limit_seconds: float = DISCORD_TIMEOUT) -> CheckResult:
    """Log in with the bot token (`GET /users/@me`)."""
    problem = _token_shape_problem("DISCORD_TOKEN", token)
    if problem:
        return CheckResult("discord", False, problem)
    headers = {"Authorization": f"Bot {token}", "User-Agent": USER_AGENT}
    try:
        async with httpx.AsyncClient(timeout=limit_seconds) as client:
            response = await client.get(f"{base_url}/users/@me", headers=headers)
    except httpx.TimeoutException:
        return CheckResult("discord", False, f"no answer from {_host(base_url)} within {limit_seconds:g} s")
    except httpx.HTTPError as exc:
        return CheckResult("discord", False, f"cannot reach {_host(base_url)} ({type(exc).__name__})")
    status = response.status_code
    if status == 200:
        try:
            me = response.json()
            return CheckResult("discord", True, f"logged in as {me['username']} (id {me['id']})")
        except (ValueError, KeyError, TypeError):
            return CheckResult("discord", False, "Discord answered 200 but not with the bot's user")
    if status == 401:
        return CheckResult(
            "discord",
            False,
            "token rejected (401): copy a fresh token from the Discord developer portal (Bot > Reset Token) "
            "into DISCORD_TOKEN",
        )
    if status == 429:
        return CheckResult("discord", False, f"rate limited (429): try again in {_retry_after(response)}")
    if status >= 500:
        return CheckResult("discord", False, f"Discord is having trouble (HTTP {status}): try again later")
    return CheckResult("discord", False, f"unexpected answer (HTTP {status})")


async def check_runcomfy(token: str, base_url: str, *, limit_seconds: float = RUNCOMFY_TIMEOUT) -> CheckResult:
    """Whether RunComfy accepts the API token; spends nothing."""
    problem = _token_shape_problem("RUNCOMFY_API_TOKEN", token)
    if problem:
        return CheckResult("runcomfy", False, problem, refused=True)
    try:
        # One retry for a passing blip: a check should answer in seconds, not wait out an outage.
        retry = RetryPolicy(max_attempts=2, max_total=limit_seconds)
        async with RunComfyClient(token, base_url, retry=retry) as client:
            await asyncio.wait_for(client.check_token(), limit_seconds)
    except AuthError as exc:
        code = f" ({exc.status})" if exc.status else ""
        return CheckResult(
            "runcomfy",
            False,
            f"token rejected{code}: put a valid API key from RunComfy (profile > API Keys) in RUNCOMFY_API_TOKEN",
            refused=True,
        )
    except InsufficientBalanceError:
        return CheckResult("runcomfy", False, "token accepted, but the account is out of credit: top up the balance")
    except TransportError:
        return CheckResult("runcomfy", False, f"cannot reach {_host(base_url)}")
    except RunComfyError as exc:
        return CheckResult("runcomfy", False, str(exc))
    except TimeoutError:
        return CheckResult("runcomfy", False, f"no answer from {_host(base_url)} within {limit_seconds:g} s")
    return CheckResult("runcomfy", True, "token accepted")


async def check_price(
    token: str, base_url: str, fallback_micros: int, *, limit_seconds: float = RUNCOMFY_TIMEOUT
) -> CheckResult:
    """The per-image price RunComfy quotes for the model, or which configured price is used instead; free."""
    fallback = f"PRICE_PER_IMAGE_USD ({format_usd(fallback_micros)} per image) is used instead"
    try:
        retry = RetryPolicy(max_attempts=2, max_total=limit_seconds)
        async with RunComfyClient(token, base_url, retry=retry) as client:
            price = await asyncio.wait_for(client.model_price(), limit_seconds)
    except InsufficientBalanceError:
        return CheckResult("price", False, "the account is out of credit: top up the balance")
    except (RunComfyError, TimeoutError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
        return CheckResult("price", True, f"RunComfy's price could not be read ({reason}); {fallback}")
    if price.per_image_micros is None:
        return CheckResult("price", True, f"RunComfy quotes no usable per-image price ({price.problem}); {fallback}")
    return CheckResult("price", True, f"{format_usd(price.per_image_micros)} per image, quoted by RunComfy")


async def _runcomfy_and_price(settings: Settings) -> list[CheckResult]:
    token, base_url = settings.runcomfy_api_token, settings.runcomfy_base_url
    token_result = await check_runcomfy(token, base_url)
    if token_result.refused:
        return [token_result, CheckResult("price", None, "the token must be fixed first")]
    return [token_result, await check_price(token, base_url, settings.price_per_image_usd_micros)]


async def _skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, None, reason)


async def run_checks(environ: Mapping[str, str] | None = None) -> list[CheckResult]:
    """Every check, in a fixed order; the network checks run at the same time."""
    settings_result, settings = check_settings(environ)
    if settings is None:
        reason = "the settings above must be fixed first"
        names = ("database folder", "discord", "runcomfy", "price")
        return [settings_result, *(CheckResult(n, None, reason) for n in names)]
    from bot.cli.check_database import check_postgres, check_sqlite

    folders: list[Awaitable[CheckResult]]
    if settings.database_url:
        folders = [check_postgres(settings.database_url)]
        folders.append(asyncio.to_thread(check_folder, "heartbeat folder", settings.heartbeat_path))
    else:
        folders = [asyncio.to_thread(check_sqlite, settings.database_path)]
        if settings.heartbeat_path.parent != settings.database_path.parent:
            folders.append(asyncio.to_thread(check_folder, "heartbeat folder", settings.heartbeat_path))
    discord = (
        check_discord(settings.discord_token, settings.discord_api_base_url)
        if settings.discord_token
        else _skipped("discord", "DISCORD_TOKEN is not set")
    )
    if not settings.runcomfy_api_token:
        reason = "RUNCOMFY_API_TOKEN is not set"
        runcomfy: Awaitable[Sequence[CheckResult]] = asyncio.gather(
            _skipped("runcomfy", reason), _skipped("price", reason)
        )
    else:
        runcomfy = _runcomfy_and_price(settings)
    folder_results, discord_result, runcomfy_results = await asyncio.gather(asyncio.gather(*folders), discord, runcomfy)
    return [settings_result, *folder_results, discord_result, *runcomfy_results]


def main(environ: Mapping[str, str] | None = None) -> int:
    """`seedream-bot check`: print one line per check; 0 if all passed, else 1."""
    try:
        readable = load_settings(environ, require="none", create_dirs=False)
    except SettingsError:
        redact = Redactor()  # the settings check reports it; without settings there are no tokens to use
    else:
        redact = Redactor(secrets_of(readable))
        configure_logging(dataclasses.replace(readable, log_level="ERROR"))
    results = asyncio.run(run_checks(environ))
    for result in results:
        print(redact(result.line()), flush=True)
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED
