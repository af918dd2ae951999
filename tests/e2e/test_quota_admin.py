"""/quota through the real bot on the fake Discord: definitions, permissions, every subcommand, bad input, budget."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.domain.job_state import JobState
from bot.engine.quotas import Override
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.runcomfy import JobPlan
from tests.imagine_helpers import eventually, refused_privately, start_imagine_bot

SUBCOMMANDS = {
    "set": ["user", "images"],
    "role": ["role", "images"],
    "default": ["images", "period", "concurrent"],
    "unlimited": ["target"],
    "remove": ["target"],
    "reset": ["user"],
    "show": ["user"],
    "budget": ["images", "period", "dollars"],
    "budget-remove": [],
    "alerts": ["channel"],
    "language": ["language"],
}


async def answer(fake: FakeDiscord, interaction) -> dict[str, Any]:
    """The message answering an interaction, checked to be ephemeral (flag 64)."""
    callback = await fake.wait_for_callback(interaction)
    assert callback.status == 200
    message = fake.original_for(interaction)
    assert message is not None
    assert message["flags"] & p.EPHEMERAL
    return message


async def quota(fake: FakeDiscord, subcommand: str, options: dict[str, Any] | None = None, *, by=None) -> str:
    """Run `/quota <subcommand>` (as the admin unless `by`) and return the ephemeral answer's text."""
    interaction = await fake.run_command("quota", options, subcommand=subcommand, by=by or fake.world.admin)
    return (await answer(fake, interaction))["content"]


def new_member(fake: FakeDiscord, name: str, roles: list[int] | None = None) -> dict[str, Any]:
    return p.member(p.user(fake.world.ids.next(), name), roles or [])


def user_id(member: dict[str, Any]) -> int:
    return int(member["user"]["id"])


@pytest.fixture
def artists_role(fake_discord: FakeDiscord, monkeypatch) -> dict[str, Any]:
    """A plain role of the guild (no permissions); must be requested before the bot starts."""
    world = fake_discord.world
    role = p.role(world.ids.next(), "Artists", permissions=0, position=1)
    monkeypatch.setattr(type(world), "roles", property(lambda self: [self.everyone_role, self.admin_role, role]))
    return role


async def test_quota_is_registered_for_managers_only_with_exact_names(fake_discord, start_bot):
    await start_bot()

    definition, _guild = fake_discord.registered_command("quota")

    assert int(definition["default_member_permissions"]) == p.MANAGE_GUILD
    assert definition.get("contexts") == [0] or definition.get("dm_permission") is False
    names = {sub["name"]: [option["name"] for option in sub.get("options", [])] for sub in definition["options"]}
    assert names == SUBCOMMANDS
    options = {sub["name"]: {o["name"]: o for o in sub.get("options", [])} for sub in definition["options"]}
    assert options["unlimited"]["target"]["type"] == p.MENTIONABLE
    assert options["remove"]["target"]["type"] == p.MENTIONABLE
    assert options["set"]["user"]["type"] == p.USER and options["role"]["role"]["type"] == p.ROLE
    assert options["set"]["images"]["min_value"] == 0
    assert [c["value"] for c in options["default"]["period"]["choices"]] == ["day", "week", "month"]
    assert not options["show"]["user"].get("required")
    assert not any(o.get("required") for o in options["default"].values())  # change only what you name
    assert not any(o.get("required") for o in options["budget"].values())


async def test_members_without_manage_server_are_refused_and_nothing_changes(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    attempts = {
        "set": {"user": world.member, "images": 100},
        "role": {"role": world.admin_role, "images": 100},
        "default": {"images": 100},
        "unlimited": {"target": world.member},
        "remove": {"target": world.member},
        "reset": {"user": world.member},
        "show": {},
        "budget": {"images": 5},
        "budget-remove": {},
        "alerts": {"channel": world.channel},
    }
    for subcommand, options in attempts.items():
        text = await quota(fake_discord, subcommand, options, by=world.member)
        assert "Manage Server" in text, subcommand

    assert await bot.quotas.overrides(world.guild_id) == []
    assert (await bot.quotas.guild_settings(world.guild_id)).is_default


async def test_set_gives_a_member_a_limit_and_says_what_changed(fake_discord, start_bot, caplog):
    bot = await start_bot()
    world = fake_discord.world
    member_id, admin_id = user_id(world.member), user_id(world.admin)

    with caplog.at_level(logging.INFO, logger="cogs.quota_admin"):
        text = await quota(fake_discord, "set", {"user": world.member, "images": 5})

    assert await bot.quotas.overrides(world.guild_id) == [Override("user", member_id, 5)]
    assert f"<@{member_id}>" in text
    assert "30 images per day (server default) → 5 images per day (user override)" in text
    logged = [r.getMessage() for r in caplog.records if "quota change" in r.getMessage()]
    assert len(logged) == 1
    assert str(world.guild_id) in logged[0] and f"admin {admin_id}" in logged[0] and f"user {member_id}" in logged[0]
    assert "30 images per day (server default) -> 5 images per day (user override)" in logged[0]

    text = await quota(fake_discord, "set", {"user": world.member, "images": 0})
    assert "→ 0 images (blocked)" in text and "can't generate" in text
    limit = await bot.quotas.effective_limit(world.guild_id, member_id)
    assert limit.images == 0


async def test_a_role_limit_applies_to_its_members_and_the_most_generous_role_wins(
    fake_discord, start_bot, artists_role
):
    bot = await start_bot()
    world = fake_discord.world
    role_id = int(artists_role["id"])
    carol = new_member(fake_discord, "carol", [role_id])

    text = await quota(fake_discord, "role", {"role": artists_role, "images": 50})
    assert f"<@&{role_id}>" in text and "none → 50 images per day" in text
    await quota(fake_discord, "role", {"role": world.admin_role, "images": 10})

    assert set(await bot.quotas.overrides(world.guild_id)) == {
        Override("role", role_id, 50),
        Override("role", world.admin_role_id, 10),
    }
    both_roles = new_member(fake_discord, "dave", [role_id, world.admin_role_id])
    shown = await quota(fake_discord, "show", {"user": both_roles})
    assert f"Limit: 50 images per day (role <@&{role_id}>)" in shown
    shown = await quota(fake_discord, "show", {"user": carol})
    assert f"Limit: 50 images per day (role <@&{role_id}>)" in shown
    shown = await quota(fake_discord, "show", {"user": world.member})
    assert "Limit: 30 images per day (server default)" in shown


async def test_default_changes_the_servers_limit_period_and_concurrency(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world

    text = await quota(fake_discord, "default", {"images": 12, "period": "week", "concurrent": 3})

    settings = await bot.quotas.guild_settings(world.guild_id)
    assert (settings.images, settings.period, settings.max_concurrent) == (12, "week", 3)
    assert (
        "30 images per day, at most 2 sets in progress per member → "
        "12 images per week, at most 3 sets in progress per member"
    ) in text
    text = await quota(fake_discord, "default", {"images": 20})  # period and concurrency stay
    assert "→ 20 images per week, at most 3 sets" in text
    assert (await bot.quotas.guild_settings(world.guild_id)).period == "week"


async def test_unlimited_then_remove_for_a_member_and_a_role(fake_discord, start_bot, artists_role):
    bot = await start_bot()
    world = fake_discord.world
    member_id, role_id = user_id(world.member), int(artists_role["id"])

    text = await quota(fake_discord, "unlimited", {"target": world.member})
    assert "30 images per day (server default) → unlimited (user override)" in text
    text = await quota(fake_discord, "unlimited", {"target": artists_role})
    assert "none → unlimited" in text
    assert set(await bot.quotas.overrides(world.guild_id)) == {
        Override("user", member_id, None),
        Override("role", role_id, None),
    }

    carol = new_member(fake_discord, "carol", [role_id])
    assert f"Limit: unlimited (role <@&{role_id}>)" in await quota(fake_discord, "show", {"user": carol})

    text = await quota(fake_discord, "remove", {"target": world.member})
    assert "unlimited → none" in text and "Now in force for them: 30 images per day (server default)" in text
    text = await quota(fake_discord, "remove", {"target": artists_role})
    assert "unlimited → none" in text
    assert await bot.quotas.overrides(world.guild_id) == []
    text = await quota(fake_discord, "remove", {"target": world.member})
    assert "nothing changed" in text


async def test_reset_forgets_the_members_usage_this_period(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    member_id = user_id(world.member)
    job = await bot.quotas.reserve(world.guild_id, member_id, [], 4, channel_id=world.channel_id, options={})
    await bot.storage.set_request_id(job.id, f"req-{job.id}")
    await bot.storage.transition(job.id, JobState.DELIVERING)
    await bot.storage.finish_job(job.id, JobState.DELIVERED, images_delivered=4)
    await bot.quotas.reserve(world.guild_id, member_id, [], 3, channel_id=world.channel_id, options={})

    text = await quota(fake_discord, "reset", {"user": world.member})

    assert "4 used, 3 reserved → 0 used, 0 reserved" in text and "30 images left" in text
    usage = await bot.quotas.usage(world.guild_id, member_id)
    assert (usage.used, usage.reserved, usage.remaining) == (0, 0, 30)
    assert await bot.quotas.guild_usage(world.guild_id) == 7  # the server budget still counts them


async def test_show_for_a_member_tells_limit_source_usage_jobs_and_reset(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    member_id = user_id(world.member)
    await bot.quotas.set_user_limit(world.guild_id, member_id, 20)
    await bot.quotas.reserve(world.guild_id, member_id, [], 6, channel_id=world.channel_id, options={})

    text = await quota(fake_discord, "show", {"user": world.member})

    usage = await bot.quotas.usage(world.guild_id, member_id)
    assert f"<@{member_id}>" in text
    assert "Limit: 20 images per day (user override)" in text
    assert "Used today: 0 images" in text and "Reserved by sets in progress: 6 images" in text
    assert "Left: 14 images" in text and "Sets in progress: 1 (at most 2 at a time)" in text
    assert f"<t:{int(usage.resets_at)}:R>" in text


async def test_show_for_the_server_lists_settings_overrides_budget_and_top_users(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    member_id, admin_id = user_id(world.member), user_id(world.admin)
    await bot.quotas.set_user_limit(world.guild_id, member_id, 7)
    await bot.quotas.set_role_limit(world.guild_id, world.admin_role_id, None)
    await bot.quotas.set_role_limit(world.guild_id, 424242, 3)  # a role deleted since
    await bot.quotas.set_budget(world.guild_id, 100, "week")
    await bot.quotas.reserve(world.guild_id, member_id, [], 5, channel_id=world.channel_id, options={})
    await bot.quotas.reserve(world.guild_id, admin_id, [], 2, channel_id=world.channel_id, options={})

    text = await quota(fake_discord, "show")

    assert "Default: 30 images per day, at most 2 sets in progress per member" in text
    assert "Server budget: 100 images per week; 7 images used or reserved this week" in text
    assert f"<@{member_id}>: 7 images per day" in text
    assert f"<@&{world.admin_role_id}>: unlimited" in text
    assert "<@&424242> (deleted role): 3 images per day" in text
    assert text.index(f"1. <@{member_id}>: 5 images") < text.index(f"2. <@{admin_id}>: 2 images")
    assert "Prompts refused by the filter today: 0" in text


@pytest.mark.parametrize(
    ("subcommand", "options", "expected"),
    [
        ("set", {"user": "member", "images": -1}, "can't be negative"),
        ("role", {"role": "admin_role", "images": -5}, "can't be negative"),
        ("default", {"images": -1}, "can't be negative"),
        ("default", {"images": 5, "concurrent": 0}, "at least 1"),
        ("default", {"images": 5, "period": "fortnight"}, "`period` must be day, week or month"),
        ("budget", {"images": -10}, "can't be negative"),
        ("default", {}, "Give `images`, `period` or `concurrent`"),
        ("budget", {}, "/quota budget-remove"),
        ("budget", {"period": "week"}, "no budget yet"),
        ("budget", {"period": "none"}, "`period` must be day, week or month"),
        ("set", {"user": "member", "images": 10**9}, "at most"),
        ("set", {"user": "other_bot", "images": 5}, "is a bot"),
        ("unlimited", {"target": "other_bot"}, "is a bot"),
        ("set", {"user": "stranger", "images": 5}, "not a member of this server"),
        ("reset", {"user": "stranger"}, "not a member of this server"),
        ("show", {"user": "stranger"}, "not a member of this server"),
        ("unlimited", {"target": "stranger"}, "not a member of this server"),
        ("role", {"role": "ghost_role", "images": 5}, "no longer exists"),
        ("remove", {"target": "ghost_role"}, "no longer exists"),
        ("role", {"role": "everyone_role", "images": 5}, "/quota default"),
        ("set", {"user": "gone", "images": 5}, "no longer on this server"),
        ("reset", {"user": "gone"}, "no longer on this server"),
        ("unlimited", {"target": "gone"}, "no longer on this server"),
    ],
)
async def test_bad_input_gets_a_clear_private_answer_and_changes_nothing(
    fake_discord, start_bot, subcommand, options, expected
):
    bot = await start_bot()
    world = fake_discord.world
    await bot.quotas.set_role_limit(world.guild_id, 999, 4)  # the ghost role had an override
    values = {
        "member": world.member,
        "admin_role": world.admin_role,
        "other_bot": world.other_bot,
        "stranger": p.user(world.ids.next(), "stranger"),  # a user, not a member of this server
        "ghost_role": p.role(999, "Deleted", permissions=0, position=3),
        "everyone_role": world.everyone_role,
        "gone": p.Unresolved(world.ids.next()),  # a member who left: Discord sends only the id
    }
    resolved = {name: values.get(value, value) if isinstance(value, str) else value for name, value in options.items()}

    text = await quota(fake_discord, subcommand, resolved)

    assert expected in text
    assert "Traceback" not in text and "went wrong" not in text
    assert await bot.quotas.overrides(world.guild_id) == [Override("role", 999, 4)]
    settings = await bot.quotas.guild_settings(world.guild_id)
    assert (settings.images, settings.period, settings.max_concurrent, settings.budget_images) == (30, "day", 2, None)


async def test_budget_caps_the_server_under_a_burst_of_commands(fake_discord, fake_runcomfy, start_bot):
    fake_runcomfy.plan = JobPlan(manual=True)  # jobs stay queued: their images stay reserved
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world

    text = await quota(fake_discord, "budget", {"images": 10, "period": "week"})
    assert "Server budget: none → 10 images per week" in text
    assert (await bot.quotas.guild_settings(world.guild_id)).budget_images == 10

    members = [new_member(fake_discord, f"user{n}") for n in range(6)]
    interactions = await asyncio.gather(
        *(fake_discord.run_command("imagine", {"prompt": "a red fox", "images": 4}, by=m) for m in members)
    )

    def answered() -> bool:
        return all(fake_discord.original_for(i) for i in interactions)

    await eventually(answered)
    jobs = await bot.storage.fetchall("SELECT user_id, images_reserved FROM jobs WHERE guild_id = ?", (world.guild_id,))
    assert sum(row["images_reserved"] for row in jobs) <= 10
    assert len(jobs) == 2  # 4 + 4 fit, a third set of 4 would not
    refused = [i for i in interactions if fake_discord.original_for(i)["flags"] & p.EPHEMERAL]
    assert len(refused) == 4
    for interaction in refused:
        text = await refused_privately(fake_discord, interaction)
        assert "budget" in text and "2 images left" in text
    await eventually(lambda: len(fake_runcomfy.submits) == 2)  # each submit follows its status message

    shown = await quota(fake_discord, "show")
    assert "Server budget: 10 images per week; 8 images used or reserved this week" in shown


async def test_budget_remove_removes_the_budget(fake_discord, start_bot):
    bot = await start_bot()
    guild_id = fake_discord.world.guild_id
    await bot.quotas.set_budget(guild_id, 50, "month")

    text = await quota(fake_discord, "budget-remove")

    assert (await bot.quotas.guild_settings(guild_id)).budget_images is None
    assert text == "Server budget: 50 images per month → none"
    assert await quota(fake_discord, "budget-remove") == "This server has no budget; nothing changed."


async def test_budget_period_or_images_alone_change_only_that(fake_discord, start_bot):
    bot = await start_bot()
    guild_id = fake_discord.world.guild_id
    await quota(fake_discord, "budget", {"images": 40, "period": "week"})

    text = await quota(fake_discord, "budget", {"period": "month"})
    assert text.startswith("Server budget: 40 images per week → 40 images per month")
    text = await quota(fake_discord, "budget", {"images": 25})
    assert text.startswith("Server budget: 40 images per month → 25 images per month")
    settings = await bot.quotas.guild_settings(guild_id)
    assert (settings.budget_images, settings.budget_period) == (25, "month")


@pytest.mark.parametrize(
    ("options", "after"),
    [
        ({"period": "week"}, "30 images per week, at most 2 sets in progress per member"),
        ({"concurrent": 4}, "30 images per day, at most 4 sets in progress per member"),
    ],
)
async def test_default_period_or_concurrency_alone_keep_the_images(fake_discord, start_bot, options, after):
    await start_bot()

    text = await quota(fake_discord, "default", options)

    assert text == f"Server default: 30 images per day, at most 2 sets in progress per member → {after}"


async def test_the_override_of_a_deleted_role_goes_with_it(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    await bot.quotas.set_role_limit(world.guild_id, world.admin_role_id, 99)
    await bot.quotas.set_user_limit(world.guild_id, user_id(world.member), 5)

    await fake_discord.dispatch(
        "GUILD_ROLE_DELETE", {"guild_id": str(world.guild_id), "role_id": str(world.admin_role_id)}
    )

    async def only_the_member_override_is_left():
        overrides = await bot.quotas.overrides(world.guild_id)
        return [(o.kind, o.target_id) for o in overrides] == [("user", user_id(world.member))]

    await eventually(only_the_member_override_is_left)
