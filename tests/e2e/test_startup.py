"""End to end: the real bot starts against the fake Discord, syncs its commands only when they change, answers
`/help`, and a rejected token ends the run with one clear line."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.discord import runner
from bot.discord.bot import SeedreamBot
from bot.discord.sync import InMemoryMetaStore
from tests.fakes import discord_payloads as p
from tests.fixtures.discord import bot_settings

COMMAND_SYNC = r"^/applications/\d+(/guilds/\d+)?/commands$"


async def test_bot_starts_identifies_and_syncs_its_commands(fake_discord, start_bot):
    bot = await start_bot()

    assert bot.user is not None and bot.user.id == fake_discord.world.application_id
    identify = fake_discord.gateway.identifies[0]
    assert identify["token"] == fake_discord.token
    assert identify["intents"] == 1  # guilds only: no privileged intents
    session = fake_discord.gateway.sessions[0]
    assert session.path == "/gateway"  # the URL the API named, not a built-in default
    assert session.query["compress"] in ("zlib-stream", "zstd-stream")  # asked for, yet plain text frames work
    assert [g.id for g in bot.guilds] == [fake_discord.world.guild_id]
    assert bot.guilds[0].filesize_limit == fake_discord.world.filesize_limit
    assert bot.commands_synced is True
    help_definition, guild_id = fake_discord.registered_command("help")
    assert guild_id is None
    assert help_definition["description"]
    assert fake_discord.unknown_routes == []


async def test_help_answers_ephemerally_with_the_command_list(fake_discord, start_bot):
    await start_bot()

    interaction = await fake_discord.run_command("help", by=fake_discord.world.admin)
    callback = await fake_discord.wait_for_callback(interaction)

    assert callback.status == 200
    assert callback.query == {"with_response": "1"}
    assert callback.json["type"] == 4  # a message, not a deferral
    assert callback.json["data"]["flags"] & p.EPHEMERAL
    original = fake_discord.original_for(interaction)
    assert original is not None and original["flags"] & p.EPHEMERAL
    content = original["content"]
    assert "Seedream" in content
    members, admins = content.split("**For admins** (Manage Server)")
    ids = {name: fake_discord.registered_command(name)[0]["id"] for name in ("help", "imagine", "usage", "quota")}
    for name in ("help", "imagine", "usage"):
        assert f"</{name}:{ids[name]}>" in members  # Discord shows these as clickable commands
    assert f"</quota set:{ids['quota']}>" in admins and "</filter add:" in admins and "</quota" not in members
    assert len(content) <= 2000
    assert fake_discord.unknown_routes == []


async def test_help_shows_the_admin_section_only_to_members_with_manage_server(fake_discord, start_bot):
    await start_bot()

    interaction = await fake_discord.run_command("help", by=fake_discord.world.member)
    await fake_discord.wait_for_callback(interaction)

    content = fake_discord.original_for(interaction)["content"]
    assert "</imagine:" in content and "For admins" not in content and "quota set" not in content


async def test_help_names_commands_as_text_when_their_ids_cannot_be_fetched(fake_discord, start_bot):
    await start_bot()
    fake_discord.fail("GET", r"/commands$", status=503)

    interaction = await fake_discord.run_command("help", by=fake_discord.world.member)
    await fake_discord.wait_for_callback(interaction)

    content = fake_discord.original_for(interaction)["content"]
    assert "`/imagine`" in content and "`/help`" in content


async def test_help_works_in_direct_messages(fake_discord, start_bot):
    await start_bot()

    interaction = await fake_discord.run_command("help", in_dm=True)

    assert (await fake_discord.wait_for_callback(interaction)).status == 200
    assert "</help:" in fake_discord.original_for(interaction)["content"]


async def test_second_start_with_the_same_commands_does_not_sync_again(fake_discord, start_bot):
    store = InMemoryMetaStore()
    first = await start_bot(services={"meta_store": store})
    await start_bot.stop(first)
    second = await start_bot(services={"meta_store": store})

    assert first.commands_synced is True
    assert second.commands_synced is False
    assert len(fake_discord.find_requests("PUT", COMMAND_SYNC)) == 1


async def test_changed_commands_or_target_sync_again(fake_discord, start_bot):
    class BotWithAnotherCommand(SeedreamBot):
        async def start_services(self) -> None:
            @self.tree.command(name="ping", description="Check the bot answers")
            async def ping(interaction) -> None:
                await interaction.response.send_message("pong", ephemeral=True)

    store = InMemoryMetaStore()
    await start_bot.stop(await start_bot(services={"meta_store": store}))
    await start_bot.stop(await start_bot(bot_factory=BotWithAnotherCommand, services={"meta_store": store}))
    same_commands_to_the_dev_server = {"bot_factory": BotWithAnotherCommand, "services": {"meta_store": store}}
    dev = await start_bot(**same_commands_to_the_dev_server, dev_guild_id=fake_discord.world.guild_id)

    syncs = fake_discord.find_requests("PUT", COMMAND_SYNC)
    assert len(syncs) == 3
    base_commands = {c["name"] for c in syncs[0].json}
    assert "help" in base_commands and "ping" not in base_commands
    assert {c["name"] for c in syncs[1].json} == base_commands | {"ping"}
    assert syncs[2].path.endswith(f"/guilds/{fake_discord.world.guild_id}/commands")
    assert dev.commands_synced is True
    assert {c["name"] for c in fake_discord.commands[fake_discord.world.guild_id]} == base_commands | {"ping"}
    # In the development server the commands answer from their guild copy.
    interaction = await fake_discord.run_command("help")
    assert (await fake_discord.wait_for_callback(interaction)).status == 200


async def test_a_failed_sync_does_not_stop_the_bot_and_is_retried_at_the_next_start(fake_discord, start_bot):
    store = InMemoryMetaStore()
    fake_discord.fail("PUT", COMMAND_SYNC, status=403, code=50001, times=1)
    first = await start_bot(services={"meta_store": store})
    await start_bot.stop(first)
    second = await start_bot(services={"meta_store": store})

    assert first.commands_synced is False
    assert second.commands_synced is True
    assert [r.status for r in fake_discord.find_requests("PUT", COMMAND_SYNC)] == [403, 200]


async def test_bot_reconnects_when_resume_is_refused(fake_discord, start_bot):
    class QuickReidentifyBot(SeedreamBot):
        async def before_identify_hook(self, shard_id, *, initial=False) -> None:
            return None  # the default waits 5 s between identifies

    await start_bot(bot_factory=QuickReidentifyBot)
    await fake_discord.gateway.request_reconnect()

    await fake_discord.gateway.wait_for_identified(count=2)
    assert len(fake_discord.gateway.resumes) == 1
    # After the refused resume discord.py falls back to its default gateway: the bot made that the fake's too.
    assert [s.path for s in fake_discord.gateway.sessions] == ["/gateway"] * 3
    interaction = await fake_discord.run_command("help")
    assert (await fake_discord.wait_for_callback(interaction)).status == 200


async def test_start_with_a_rejected_token_fails_with_login_failure(fake_discord, start_bot):
    import discord

    with pytest.raises(discord.LoginFailure):
        await start_bot(discord_token="not-the-token")
    assert fake_discord.gateway.sessions == []


async def test_runner_prints_one_line_and_returns_1_for_a_rejected_token(fake_discord, tmp_path, capsys):
    settings = bot_settings(fake_discord, tmp_path, discord_token="not-the-token")

    assert await runner.run_bot(settings) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DISCORD_TOKEN" in err and "Traceback" not in err
    assert "not-the-token" not in err


async def test_runner_reports_an_unreachable_discord_in_one_line(fake_discord, tmp_path, capsys):
    fake_discord.fail("GET", "^/users/@me$", status=503)
    assert await runner.run_bot(bot_settings(fake_discord, tmp_path)) == 1
    unreachable = bot_settings(fake_discord, tmp_path, discord_api_base_url="http://127.0.0.1:9/api/v10")
    assert await runner.run_bot(unreachable) == 1

    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "seedream-bot: Discord answered HTTP 503 while starting; try again later."
    assert lines[1].startswith("seedream-bot: cannot reach Discord at http://127.0.0.1:9/api/v10: ")
    assert len(lines) == 2


async def test_runner_main_loads_settings_and_reports_a_rejected_token(fake_discord, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DISCORD_TOKEN", "not-the-token")
    monkeypatch.setenv("RUNCOMFY_API_TOKEN", "fake-runcomfy-token")
    monkeypatch.setenv("RUNCOMFY_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DISCORD_API_BASE_URL", fake_discord.api_url)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "seedream.db"))
    monkeypatch.setenv("HEARTBEAT_PATH", str(tmp_path / "heartbeat"))

    assert await asyncio.to_thread(runner.main) == 1  # its own event loop, talking to the fake over TCP

    err = capsys.readouterr().err
    assert "DISCORD_TOKEN" in err and "Traceback" not in err


async def test_a_refused_runcomfy_token_stops_the_start_with_one_line(fake_discord, fake_runcomfy, tmp_path, capsys):
    settings = bot_settings(
        fake_discord, tmp_path, runcomfy_api_token="wrong-runcomfy-key", runcomfy_base_url=fake_runcomfy.base_url
    )

    assert await runner.run_bot(settings) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("seedream-bot: RunComfy refused RUNCOMFY_API_TOKEN: token rejected (401)")
    assert "wrong-runcomfy-key" not in err
    assert fake_discord.gateway.sessions == [] and fake_discord.find_requests("GET", "^/users/@me$") == []
    assert fake_runcomfy.submits == []


async def test_an_unreachable_runcomfy_only_warns_and_the_bot_starts(fake_discord, tmp_path, capsys, caplog):
    settings = bot_settings(fake_discord, tmp_path, discord_token="not-the-token")  # RunComfy: a closed local port

    assert await runner.run_bot(settings) == 1  # it went on to log in to Discord, which refused

    assert "RunComfy could not confirm the API token at start" in caplog.text
    assert "RUNCOMFY_API_TOKEN" not in capsys.readouterr().err
    assert fake_discord.find_requests("GET", "^/users/@me$")


def make_newer_database(path) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("PRAGMA user_version = 99")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("directory", "cannot be opened"), ("garbage", "Is it an SQLite database?"), ("newer", "newer release")],
)
async def test_an_unusable_database_stops_the_start_before_login_in_one_line(
    fake_discord, tmp_path, capsys, kind, expected
):
    database = tmp_path / "seedream.db"
    if kind == "directory":
        database.mkdir()
    elif kind == "garbage":
        database.write_bytes(b"these are not the pages of a database" * 200)
    else:
        make_newer_database(database)

    assert await runner.run_bot(bot_settings(fake_discord, tmp_path)) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seedream-bot: ") and "Traceback" not in err
    assert str(database) in err and expected in err
    assert fake_discord.requests == [] and fake_discord.gateway.sessions == []  # Discord never heard of it


async def test_a_read_only_database_is_refused_at_start(tmp_path):
    from bot.store.database import Storage, StorageError

    database = tmp_path / "seedream.db"
    await (await Storage.open(database)).close()
    read_only = f"file:{database}?mode=ro"  # what a file the bot's user may not write looks like to SQLite

    import aiosqlite

    real_connect = aiosqlite.connect

    def connect_read_only(path, **kwargs):
        return real_connect(read_only, uri=True, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiosqlite, "connect", connect_read_only)
        with pytest.raises(StorageError, match="readonly database"):
            await Storage.open(database)
