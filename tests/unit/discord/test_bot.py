"""The bot class: services come through its constructor, typed; the buttons are the bot's, not a cog's."""

from __future__ import annotations

import gc
import inspect

import pytest

from bot.discord.bot import SeedreamBot
from bot.discord.buttons import job_view
from bot.discord.sync import InMemoryMetaStore
from tests.fakes import discord_payloads as p
from tests.imagine_helpers import eventually


class BotWithoutCogs(SeedreamBot):
    EXTENSIONS = ()


@pytest.mark.parametrize(
    ("custom_id", "cancellable", "finished"),
    [("seedream:cancel:0123456789ab", True, False), ("seedream:again:0123456789ab", False, True)],
)
async def test_both_buttons_answer_even_with_no_cog_loaded(fake_discord, start_bot, custom_id, cancellable, finished):
    await start_bot(bot_factory=BotWithoutCogs)
    world = fake_discord.world
    components = job_view("0123456789ab", cancellable=cancellable, finished=finished).to_components()
    message = p.message(
        world.ids.next(), world.channel_id, world.bot_user, guild_id=world.guild_id, components=components
    )

    clicked = await fake_discord.click_button(custom_id, message, by=world.member)

    callback = await fake_discord.wait_for_callback(clicked)
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] & p.EPHEMERAL
    assert "don't know this job" in callback.json["data"]["content"]


def test_services_are_named_typed_parameters_not_free_attributes(tmp_path):
    parameters = inspect.signature(SeedreamBot.__init__).parameters
    assert {"storage", "runcomfy", "prices", "meta_store"} <= set(parameters)
    assert not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())
    with pytest.raises(TypeError):
        SeedreamBot(None, storage_typo=InMemoryMetaStore())  # type: ignore[arg-type, call-arg]


async def test_once_ready_the_start_up_objects_are_out_of_the_collectors_way(fake_discord, start_bot):
    gc.unfreeze()
    try:
        bot = await start_bot(bot_factory=BotWithoutCogs)
        await eventually(lambda: bot._resumed and gc.get_freeze_count() > 0, timeout=5)
    finally:
        gc.unfreeze()
