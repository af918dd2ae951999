"""End to end: a process runs the shards SHARD_IDS of SHARD_COUNT; two processes split a bot's shards, each
guild's events reach the one whose shard holds it, and only the process with shard 0 syncs the commands."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord.bot import SeedreamBot
from tests.fixtures.discord import bot_settings

COMMAND_SYNC = r"^/applications/\d+(/guilds/\d+)?/commands$"


class QuickIdentifyBot(SeedreamBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between two identifies, Discord's limit the fake does not enforce


def guild_shard(fake_discord, count: int) -> int:
    return (fake_discord.world.guild_id >> 22) % count


async def test_a_process_on_shards_0_and_1_of_4_identifies_exactly_those(fake_discord, start_bot):
    bot = await start_bot(bot_factory=QuickIdentifyBot, shard_count=4, shard_ids=(0, 1))

    assert sorted(fake_discord.gateway.identified_shards) == [[0, 4], [1, 4]]
    assert sorted(bot.shards) == [0, 1] and bot.shard_count == 4
    holds_guild = guild_shard(fake_discord, 4) in (0, 1)
    assert [g.id for g in bot.guilds] == ([fake_discord.world.guild_id] if holds_guild else [])
    assert bot.commands_synced is True  # it runs shard 0
    assert bot._connected()  # the heartbeat counts it alive: every one of its shards is connected


@pytest.mark.parametrize("sync_setting", ["auto", "explicit"])
async def test_two_processes_split_the_shards_and_exactly_one_syncs(fake_discord, start_bot, tmp_path, sync_setting):
    first_ids, second_ids = (0, 1), (2, 3)
    if sync_setting == "explicit":  # the process without shard 0 is the one told to sync
        first = dict(sync_commands="no")
        second = dict(sync_commands="yes")
    else:
        first, second = {}, {}
    bots = [
        await start_bot(
            bot_settings(fake_discord, tmp_path / "a", shard_count=4, shard_ids=first_ids, **first),
            bot_factory=QuickIdentifyBot,
        ),
        await start_bot(
            bot_settings(fake_discord, tmp_path / "b", shard_count=4, shard_ids=second_ids, **second),
            bot_factory=QuickIdentifyBot,
        ),
    ]

    assert sorted(fake_discord.gateway.identified_shards) == [[0, 4], [1, 4], [2, 4], [3, 4]]
    syncing = [bot.commands_synced is True for bot in bots]
    assert syncing == ([True, False] if sync_setting == "auto" else [False, True])
    assert len(fake_discord.find_requests("PUT", COMMAND_SYNC)) == 1
    holder = 0 if guild_shard(fake_discord, 4) in first_ids else 1
    assert [len(bot.guilds) for bot in bots] == [1 - holder, holder]

    interaction = await fake_discord.run_command("help")
    callback = await fake_discord.wait_for_callback(interaction)
    await asyncio.sleep(0.2)  # room for a second, wrong answer to arrive
    assert callback.status == 200
    assert len(fake_discord.find_requests("POST", r"^/interactions/")) == 1  # answered once, by the holder
