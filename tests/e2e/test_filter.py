"""/filter and the prompt filter through the real bot, on the fake Discord and the fake RunComfy."""

from __future__ import annotations

from typing import Any

from bot.discord.buttons import job_view
from bot.domain.job_state import JobState
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.imagine_helpers import eventually, refused_privately, start_imagine_bot


async def answer(fake: FakeDiscord, interaction) -> dict[str, Any]:
    """The message answering an interaction, checked to be ephemeral (flag 64)."""
    callback = await fake.wait_for_callback(interaction)
    assert callback.status == 200
    message = fake.original_for(interaction)
    assert message is not None and message["flags"] & p.EPHEMERAL
    return message


async def run(fake: FakeDiscord, name: str, subcommand: str | None = None, options=None, *, by=None) -> str:
    interaction = await fake.run_command(name, options, subcommand=subcommand, by=by or fake.world.admin)
    return (await answer(fake, interaction))["content"]


def user_id(member: dict[str, Any]) -> int:
    return int(member["user"]["id"])


async def test_filter_is_registered_for_managers_only_with_exact_names(fake_discord, start_bot):
    await start_bot()

    definition, _guild = fake_discord.registered_command("filter")

    assert int(definition["default_member_permissions"]) == p.MANAGE_GUILD
    assert definition.get("contexts") == [0] or definition.get("dm_permission") is False
    names = {sub["name"]: [option["name"] for option in sub.get("options", [])] for sub in definition["options"]}
    assert names == {"add": ["term"], "remove": ["term"], "list": []}
    for name in ("usage", "jobs"):
        member_command, _guild = fake_discord.registered_command(name)
        assert member_command["default_member_permissions"] is None
        assert member_command.get("options", []) == []


async def test_members_without_manage_server_cannot_use_filter(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world

    for subcommand, options in (("add", {"term": "wolf"}), ("remove", {"term": "wolf"}), ("list", None)):
        text = await run(fake_discord, "filter", subcommand, options, by=world.member)
        assert "Manage Server" in text, subcommand

    assert await bot.jobs.prompt_filter.terms(world.guild_id) == []


async def test_admins_add_list_and_remove_terms(fake_discord, start_bot, caplog):
    bot = await start_bot()
    world = fake_discord.world

    with caplog.at_level("INFO", logger="cogs.prompt_filter"):
        text = await run(fake_discord, "filter", "add", {"term": "Wolf*"})
    assert "Blocked: `wolf*`" in text
    assert any(str(user_id(world.admin)) in r.getMessage() and "wolf*" in r.getMessage() for r in caplog.records)
    assert "already blocked" in await run(fake_discord, "filter", "add", {"term": "wolf*"})
    await run(fake_discord, "filter", "add", {"term": "self-harm"})
    assert [t.term for t in await bot.jobs.prompt_filter.terms(world.guild_id)] == ["self harm", "wolf*"]

    listed = await run(fake_discord, "filter", "list")
    assert "`self harm`" in listed and "`wolf*`" in listed and f"<@{user_id(world.admin)}>" in listed
    assert "Prompts refused today: 0" in listed

    assert "allowed again" in await run(fake_discord, "filter", "remove", {"term": "WOLF*"})
    assert "nothing changed" in await run(fake_discord, "filter", "remove", {"term": "wolf*"})
    assert [t.term for t in await bot.jobs.prompt_filter.terms(world.guild_id)] == ["self harm"]


async def test_an_unusable_term_is_explained_and_not_stored(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world

    for term, reason in (("(a+)+$", "can only contain"), ("*", "letter or digit"), ("x" * 80, "at most 60")):
        text = await run(fake_discord, "filter", "add", {"term": term})
        assert reason in text, term
    assert "nothing changed" in await run(fake_discord, "filter", "remove", {"term": "(a+)+$"})

    assert await bot.jobs.prompt_filter.terms(world.guild_id) == []


async def test_a_blocked_prompt_is_refused_privately_before_any_quota_and_counted(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    await run(fake_discord, "filter", "add", {"term": "wolf*"})

    interaction = await fake_discord.run_command("imagine", {"prompt": "Two grey WOLFHOUNDS in the snow", "images": 2})

    refusal = await refused_privately(fake_discord, interaction)
    assert "doesn't allow “wolfhounds”" in refusal and "rephrase" in refusal
    assert await bot.storage.fetchall("SELECT id FROM jobs") == []
    assert fake_runcomfy.submits == []
    usage = await bot.quotas.usage(world.guild_id, user_id(world.member))
    assert (usage.used, usage.reserved) == (0, 0)

    assert "Prompts refused by the filter today: 1" in await run(fake_discord, "quota", "show")
    shown = await run(fake_discord, "quota", "show", {"user": world.member})
    assert "Prompts refused by the filter today: 1" in shown
    shown = await run(fake_discord, "quota", "show", {"user": world.admin})
    assert "Prompts refused by the filter today: 0" in shown
    assert "Prompts refused today: 1" in await run(fake_discord, "filter", "list")

    allowed = await fake_discord.run_command("imagine", {"prompt": "a grey fox in the snow", "images": 1})
    callback = await fake_discord.wait_for_callback(allowed)
    assert callback.json["type"] == 4 and not callback.json["data"].get("flags", 0) & p.EPHEMERAL
    await eventually(lambda: len(fake_runcomfy.submits) == 1)


async def test_again_on_a_prompt_blocked_since_is_refused_privately(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    await fake_discord.run_command("imagine", {"prompt": "a wolf at dusk", "images": 1})

    async def delivered():
        jobs = await bot.storage.recent_jobs(world.guild_id, user_id(world.member))
        return jobs and jobs[0].state is JobState.DELIVERED and jobs[0]

    job = await eventually(delivered)
    await run(fake_discord, "filter", "add", {"term": "wolf"})
    message = dict(fake_discord.message(job.reply_message_id))
    message["components"] = job_view(job.id, cancellable=False, finished=True).to_components()

    clicked = await fake_discord.click_button(f"seedream:again:{job.id}", message, by=world.member)

    assert "doesn't allow “wolf”" in await refused_privately(fake_discord, clicked)
    assert len(await bot.storage.recent_jobs(world.guild_id, user_id(world.member))) == 1
    assert len(fake_runcomfy.submits) == 1
