"""`seedream-bot check` against the fake Discord and fake RunComfy on 127.0.0.1."""

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from bot.cli.check import CheckResult, check_discord, check_folder, check_runcomfy, run_checks
from tests.fakes.discord import FakeDiscord
from tests.fakes.runcomfy import FakeRunComfy

REPO = Path(__file__).resolve().parents[3]
GOOD_DISCORD = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.good-discord-token-abcdefghijk"
GOOD_RUNCOMFY = "rc-good-token-0123456789"
SETTINGS_PREFIXES = ("DISCORD_", "RUNCOMFY_", "DATABASE_", "HEARTBEAT_", "LOG_", "QUOTA_", "POLL_", "JOB_", "DOWNLOAD_")


class Fakes:
    def __init__(self, discord: FakeDiscord, runcomfy: FakeRunComfy) -> None:
        self.discord = discord
        self.runcomfy = runcomfy

    @property
    def discord_paths(self) -> list[str]:
        return [request.path for request in self.discord.requests]

    @property
    def runcomfy_auth(self) -> list[str]:
        return [request.headers.get("Authorization", "") for request in self.runcomfy.requests]


@pytest.fixture
async def fakes():
    discord = FakeDiscord(token=GOOD_DISCORD)
    await discord.start()
    async with FakeRunComfy(token=GOOD_RUNCOMFY) as runcomfy:
        try:
            yield Fakes(discord, runcomfy)
        finally:
            await discord.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(fakes: Fakes, tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DISCORD_TOKEN": GOOD_DISCORD,
        "RUNCOMFY_API_TOKEN": GOOD_RUNCOMFY,
        "DISCORD_API_BASE_URL": fakes.discord.api_url,
        "RUNCOMFY_BASE_URL": fakes.runcomfy.base_url,
        "DATABASE_PATH": str(tmp_path / "data" / "seedream.db"),
        "HEARTBEAT_PATH": str(tmp_path / "data" / "heartbeat"),
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


async def run_check_command(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """`python -m bot check` in a clean environment, cwd `tmp_path`, without blocking the fakes' event loop."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES) and not k.lower().endswith("_proxy")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check",
        cwd=tmp_path,
        env={**base, "PYTHONPATH": str(REPO), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_command_all_checks_pass(fakes, tmp_path):
    code, out, err = await run_check_command(tmp_path, environment(fakes, tmp_path))
    assert code == 0, out + err
    assert out.splitlines() == [
        "ok   settings",
        f"ok   database folder: {tmp_path / 'data'} is writable",
        f"ok   discord: logged in as seedream-bot (id {fakes.discord.world.bot_user['id']})",
        "ok   runcomfy: token accepted",
        "ok   price: $0.03 per image, quoted by RunComfy",
    ]
    assert fakes.discord_paths == ["/users/@me"]
    assert fakes.runcomfy_auth == [f"Bearer {GOOD_RUNCOMFY}"] * 2
    assert fakes.runcomfy.counts["model"] == 1
    assert fakes.runcomfy.counts["submit"] == 0  # nothing was spent
    assert list((tmp_path / "data").iterdir()) == []  # the probe file is gone


async def test_command_rejected_discord_token_fails_without_printing_it(fakes, tmp_path):
    wrong = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.wrong-discord-token-abcdefghijk"
    code, out, err = await run_check_command(tmp_path, environment(fakes, tmp_path, DISCORD_TOKEN=wrong))
    assert code == 1
    assert "FAIL discord: token rejected (401)" in out
    assert "ok   runcomfy: token accepted" in out
    assert wrong not in out + err and GOOD_RUNCOMFY not in out + err


async def test_command_missing_token_still_checks_the_other(fakes, tmp_path):
    code, out, _ = await run_check_command(tmp_path, environment(fakes, tmp_path, DISCORD_TOKEN=""))
    assert code == 1
    assert out.splitlines()[0].startswith("FAIL settings: DISCORD_TOKEN is not set")
    assert "skip discord: DISCORD_TOKEN is not set" in out
    assert "ok   runcomfy: token accepted" in out
    assert fakes.discord_paths == []


async def test_command_reads_dotenv_in_the_working_folder(fakes, tmp_path):
    env = environment(fakes, tmp_path)
    (tmp_path / ".env").write_text(f"RUNCOMFY_API_TOKEN=wrong-token-value\nDISCORD_TOKEN={GOOD_DISCORD}\n")
    del env["RUNCOMFY_API_TOKEN"], env["DISCORD_TOKEN"]
    code, out, _ = await run_check_command(tmp_path, env)
    assert code == 1
    assert "FAIL runcomfy: token rejected (401)" in out
    assert "wrong-token-value" not in out


async def test_malformed_setting_skips_everything_else(tmp_path):
    tokens = {"DISCORD_TOKEN": "discord-token", "RUNCOMFY_API_TOKEN": "runcomfy-token"}
    results = await run_checks({**tokens, "LOG_LEVEL": "loud"})
    assert [r.ok for r in results] == [False, None, None, None, None]
    assert results[0].line().startswith('FAIL settings: LOG_LEVEL="loud" is invalid')


async def test_runcomfy_out_of_credit_is_reported(fakes, tmp_path):
    fakes.runcomfy.fail_next("status", 402)
    results = await run_checks(environment(fakes, tmp_path))
    assert results[-2].line() == ("FAIL runcomfy: token accepted, but the account is out of credit: top up the balance")
    fakes.runcomfy.out_of_credit = True
    results = await run_checks(environment(fakes, tmp_path))
    assert results[-1].line() == "FAIL price: the account is out of credit: top up the balance"


@pytest.mark.parametrize(
    ("model_info", "reason"),
    [
        ({"base_price_usd": -3}, "RunComfy quotes no usable per-image price (no usable base_price_usd)"),
        ({"price_unit": "second"}, "RunComfy quotes no usable per-image price (the price is not per image)"),
        (None, "RunComfy's price could not be read"),
    ],
)
async def test_price_falls_back_to_the_setting_and_says_so(fakes, tmp_path, model_info, reason):
    if model_info is None:
        fakes.runcomfy.fail_next("model", 404)
    else:
        fakes.runcomfy.model_info = fakes.runcomfy.model_info | model_info
    results = await run_checks(environment(fakes, tmp_path, PRICE_PER_IMAGE_USD="0.045"))
    line = results[-1].line()
    assert line.startswith(f"ok   price: {reason}")
    assert line.endswith("PRICE_PER_IMAGE_USD ($0.045 per image) is used instead")


async def test_no_price_check_with_a_refused_token(fakes, tmp_path):
    results = await run_checks(environment(fakes, tmp_path, RUNCOMFY_API_TOKEN="wrong-token-value"))
    assert results[-1].line() == "skip price: the token must be fixed first"
    assert fakes.runcomfy.counts["model"] == 0


async def test_heartbeat_in_another_folder_is_checked_too(fakes, tmp_path):
    results = await run_checks(environment(fakes, tmp_path, HEARTBEAT_PATH=str(tmp_path / "run" / "heartbeat")))
    names = ["settings", "database folder", "heartbeat folder", "discord", "runcomfy", "price"]
    assert [r.name for r in results] == names
    assert all(r.ok for r in results)


async def test_discord_rate_limited(fakes):
    fakes.discord.rate_limit("GET", "^/users/@me$", retry_after=6.2)
    result = await check_discord(GOOD_DISCORD, fakes.discord.api_url)
    assert (result.ok, result.detail) == (False, "rate limited (429): try again in 7 s")


async def test_discord_server_error(fakes):
    fakes.discord.fail("GET", "^/users/@me$", status=503)
    result = await check_discord(GOOD_DISCORD, fakes.discord.api_url)
    assert (result.ok, result.detail) == (False, "Discord is having trouble (HTTP 503): try again later")


async def test_discord_unreachable():
    result = await check_discord(GOOD_DISCORD, f"http://127.0.0.1:{closed_port()}/api/v10", limit_seconds=2)
    assert result.ok is False and result.detail.startswith("cannot reach 127.0.0.1:")


async def test_runcomfy_unreachable_is_bounded_in_time():
    result = await check_runcomfy(GOOD_RUNCOMFY, f"http://127.0.0.1:{closed_port()}", limit_seconds=0.3)
    assert result.ok is False and "127.0.0.1" in result.detail


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (f"Bot {GOOD_DISCORD}", "DISCORD_TOKEN starts with 'Bot ': put the token alone"),
        ("two words", "DISCORD_TOKEN contains spaces or characters a token cannot have: copy it again"),
        ("tokén", "DISCORD_TOKEN contains spaces or characters a token cannot have: copy it again"),
    ],
)
async def test_malformed_discord_token_is_caught_before_sending(fakes, token, expected):
    result = await check_discord(token, fakes.discord.api_url)
    assert (result.ok, result.detail) == (False, expected)
    assert fakes.discord_paths == []


def test_database_folder_that_cannot_exist(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = check_folder("database folder", blocker / "seedream.db")
    assert result.ok is False and "is not writable" in result.detail


def test_database_path_that_is_a_folder(tmp_path):
    (tmp_path / "seedream.db").mkdir()
    result = check_folder("database folder", tmp_path / "seedream.db")
    assert result.ok is False and "is not a file" in result.detail


def test_result_lines():
    assert CheckResult("settings", True).line() == "ok   settings"
    assert CheckResult("discord", False, "token rejected (401)").line() == "FAIL discord: token rejected (401)"
    assert CheckResult("runcomfy", None, "RUNCOMFY_API_TOKEN is not set").line().startswith("skip runcomfy: ")


async def test_command_with_database_url_checks_postgresql_and_its_schema(fakes, tmp_path, postgres_url):
    from bot.store.database import Storage
    from bot.store.migrations import LATEST_VERSION

    env = environment(fakes, tmp_path, DATABASE_URL=postgres_url)
    code, out, err = await run_check_command(tmp_path, env)
    assert code == 0, out + err
    masked = postgres_url  # no password in the test cluster's socket URL
    empty = "reachable and empty; the bot makes its tables on first start"
    assert out.splitlines()[1] == f"ok   database: {masked}: {empty}"
    storage = await Storage.open(postgres_url)
    try:
        code, out, err = await run_check_command(tmp_path, env)
        current = f"ok   database: {masked}: schema version {LATEST_VERSION} (current)"
        assert code == 0 and out.splitlines()[1] == current
        await storage.write("UPDATE schema_version SET version = 99")
    finally:
        await storage.close()
    code, out, err = await run_check_command(tmp_path, env)
    assert code == 1 and out.splitlines()[1] == (
        f"FAIL database: {masked}: schema version 99 is newer than this release knows ({LATEST_VERSION}): "
        "upgrade seedream-bot"
    )


async def test_a_refused_postgresql_login_fails_the_check_without_showing_the_password(postgres_cluster):
    from bot.cli.check_database import check_postgres
    from tests.fixtures.postgres import PASSWORD

    result = await check_postgres(postgres_cluster.tcp_url(password="Wrong-" + PASSWORD))
    assert result.ok is False and "refused the login" in result.detail and "password authentication" in result.detail
    assert PASSWORD not in result.line() and ":***@127.0.0.1" in result.line()
    unreachable = await check_postgres(f"postgresql://u:{PASSWORD}@127.0.0.1:{closed_port()}/x", wait=2)
    assert unreachable.ok is False and "cannot be reached" in unreachable.detail and PASSWORD not in unreachable.line()


async def test_an_existing_sqlite_file_reports_its_schema_version(tmp_path):
    from bot.cli.check_database import check_sqlite
    from bot.store.database import Storage
    from bot.store.migrations import LATEST_VERSION

    path = tmp_path / "data" / "seedream.db"
    assert check_sqlite(path).detail == f"{path.parent} is writable"  # no file yet: the bot makes it
    storage = await Storage.open(path)
    try:
        current = check_sqlite(path)
        assert current.ok and current.detail.endswith(f"seedream.db has schema version {LATEST_VERSION} (current)")
        await storage.write("PRAGMA user_version = 99")
    finally:
        await storage.close()
    newer = check_sqlite(path)
    assert newer.ok is False
    assert f"schema version 99 is newer than this release knows ({LATEST_VERSION})" in newer.detail
    path.write_bytes(b"not a database at all" * 100)
    broken = check_sqlite(path)
    assert broken.ok is False and "cannot be read as an SQLite database" in broken.detail
