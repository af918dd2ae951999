"""/usage, /jobs and the Again button through the real bot, on the fake Discord and the fake RunComfy."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.discord.buttons import AgainButton, CancelButton, job_view
from bot.domain.job_state import JobState
from bot.store.database import Job
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.runcomfy import JobPlan
from tests.imagine_helpers import eventually, refused_privately, start_imagine_bot


async def answer(fake: FakeDiscord, interaction) -> dict[str, Any]:
    """The message answering an interaction, checked to be ephemeral (flag 64)."""
    callback = await fake.wait_for_callback(interaction)
    assert callback.status == 200
    message = fake.original_for(interaction)
    assert message is not None and message["flags"] & p.EPHEMERAL
    return message


def user_id(member: dict[str, Any]) -> int:
    return int(member["user"]["id"])


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for row in message.get("components", []) for item in row.get("components", [])]


def finished_status(fake: FakeDiscord, job: Job) -> dict[str, Any]:
    """The job's status message as Discord shows it once finished: with the buttons `job_view` gives it."""
    message = dict(fake.message(job.reply_message_id) or {})
    message["components"] = job_view(job.id, cancellable=False, finished=True).to_components()
    return message


async def imagine(fake: FakeDiscord, bot, prompt: str, *, by=None, state: JobState | None = None, **options) -> Job:
    """Run /imagine as `by` and return its job once it reached `state` (any state if None)."""
    by = by or fake.world.member
    known = {job.id for job in await bot.storage.recent_jobs(fake.world.guild_id, user_id(by), 50)}
    await fake.run_command("imagine", {"prompt": prompt, **options}, by=by)

    async def started() -> Job | None:
        for job in await bot.storage.recent_jobs(fake.world.guild_id, user_id(by), 50):
            if job.id not in known and job.reply_message_id and (state is None or job.state is state):
                return job
        return None

    return await eventually(started)


def test_job_view_offers_cancel_while_waiting_and_again_once_finished():
    assert job_view("abc", cancellable=False) is None
    waiting = job_view("abc", cancellable=True)
    assert [type(item) for item in waiting.children] == [CancelButton]
    finished = job_view("abc", cancellable=False, finished=True)
    assert [type(item) for item in finished.children] == [AgainButton]
    assert finished.children[0].item.custom_id == "seedream:again:abc"
    assert finished.timeout is None


async def test_usage_shows_used_reserved_limit_left_reset_and_jobs(fake_discord, start_bot):
    bot = await start_bot()
    world = fake_discord.world
    member_id = user_id(world.member)
    delivered = await bot.quotas.reserve(world.guild_id, member_id, [], 4, channel_id=world.channel_id, options={})
    await bot.storage.set_request_id(delivered.id, "req-1")
    await bot.storage.transition(delivered.id, JobState.DELIVERING)
    await bot.storage.finish_job(delivered.id, JobState.DELIVERED, images_delivered=3)
    await bot.quotas.reserve(world.guild_id, member_id, [], 5, channel_id=world.channel_id, options={})
    await bot.quotas.set_budget(world.guild_id, 100)

    text = (await answer(fake_discord, await fake_discord.run_command("usage", by=world.member)))["content"]

    usage = await bot.quotas.usage(world.guild_id, member_id)
    assert "Limit: 30 images per day (server default)" in text
    assert "Used today: 3 images" in text and "Reserved by sets in progress: 5 images" in text
    assert "Left: 22 images" in text
    assert f"Resets <t:{int(usage.resets_at)}:R>" in text
    assert "Sets in progress: 1 (at most 2 at a time)" in text
    assert "Server budget: 8 images of 100 images per day used today" in text

    other = (await answer(fake_discord, await fake_discord.run_command("usage", by=world.admin)))["content"]
    assert "Used today: 0 images" in other and "Left: 30 images" in other


async def test_jobs_lists_the_last_ten_with_links_and_cancel_buttons_for_waiting_ones(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, quota_max_concurrent_jobs=20)
    world = fake_discord.world
    for _ in range(10):  # older jobs: only the last eight of them are listed
        job = await bot.quotas.reserve(world.guild_id, user_id(world.member), [], 1, channel_id=1, options={})
        await bot.storage.finish_job(job.id, JobState.FAILED, error="x")
    done = await imagine(fake_discord, bot, "a lighthouse in a storm *bold*", images=2, state=JobState.DELIVERED)
    fake_runcomfy.plan = JobPlan(manual=True)
    waiting = await imagine(fake_discord, bot, "a quiet harbour at dawn", images=1, state=JobState.QUEUED)

    message = await answer(fake_discord, await fake_discord.run_command("jobs", by=world.member))

    lines = message["content"].splitlines()
    assert len(lines) == 11  # a heading and ten jobs
    assert lines[1].startswith("**1.** ⏳ queued · 0/1 image · “a quiet harbour at dawn”")
    assert lines[2].startswith("**2.** ✅ delivered · 2/2 images · “a lighthouse in a storm \\*bold\\*”")
    link = f"https://discord.com/channels/{world.guild_id}/{done.reply_channel_id}/{done.reply_message_id}"
    assert f"[message]({link})" in lines[2]
    assert f"<t:{int(done.created_at)}:R>" in lines[2]
    assert all("⚠️ failed · 0/1 image ·" in line for line in lines[3:])
    (cancel,) = buttons(message)
    assert cancel["custom_id"] == f"seedream:cancel:{waiting.id}" and cancel["label"] == "Cancel 1"

    clicked = await fake_discord.click_button(cancel["custom_id"], message, by=world.member)
    await fake_discord.wait_for_callback(clicked)
    await eventually(lambda: fake_discord.followups_for(clicked) or fake_discord.original_for(clicked)["content"])
    assert (await bot.storage.get_job(waiting.id)).state is JobState.CANCELLED


async def test_jobs_and_usage_of_a_member_without_jobs(fake_discord, start_bot):
    await start_bot()
    message = await answer(fake_discord, await fake_discord.run_command("jobs", by=fake_discord.world.admin))
    assert "no image sets" in message["content"] and "/imagine" in message["content"]
    assert buttons(message) == []


async def test_again_starts_a_new_job_with_the_same_options_and_a_new_seed(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    first = await imagine(
        fake_discord,
        bot,
        "a paper boat",
        images=2,
        seed=42,
        aspect="2048:2048 (1:1)",
        mode="standard",
        state=JobState.DELIVERED,
    )
    again_id = f"seedream:again:{first.id}"

    def status_with_again() -> dict[str, Any] | None:
        message = fake_discord.message(first.reply_message_id)
        return message if any(b["custom_id"] == again_id for b in buttons(message)) else None

    status = await eventually(status_with_again)  # the finished status message offers Again, and no Cancel
    assert [b["label"] for b in buttons(status)] == ["Again"]
    clicked = await fake_discord.click_button(again_id, status, by=world.admin)
    callback = await fake_discord.wait_for_callback(clicked)
    assert callback.json["type"] == 4  # a new public message: the status itself
    assert not callback.json["data"].get("flags", 0) & p.EPHEMERAL

    async def again_job() -> Job | None:
        jobs = await bot.storage.recent_jobs(world.guild_id, user_id(world.admin), 5)
        return jobs and jobs[0].state is JobState.DELIVERED and jobs[0]

    again = await eventually(again_job)
    assert again.id != first.id
    assert {k: v for k, v in again.options.items() if k != "seed"} == {
        k: v for k, v in first.options.items() if k != "seed"
    }
    assert isinstance(again.options["seed"], int) and again.options["seed"] != 42
    assert again.reply_message_id == fake_discord.interactions[clicked.token].original_id != first.reply_message_id
    assert again.interaction_token == clicked.token
    status = fake_discord.message(again.reply_message_id)
    assert status["embeds"] and not status["flags"] & p.EPHEMERAL
    assert f"seedream_{again.id}_01.png" in {
        a["filename"] for m in fake_discord.followups_for(clicked) for a in m["attachments"]
    }
    submitted = [r.json for r in fake_runcomfy.submits]
    assert len(submitted) == 2 and submitted[1]["seed"] == again.options["seed"]
    assert submitted[1]["image_size"] == submitted[0]["image_size"] == "2048:2048 (1:1)"
    usage = await bot.quotas.usage(world.guild_id, user_id(world.admin))
    assert usage.used == 2  # charged to the member who clicked


async def test_again_is_refused_privately_when_the_clicker_is_over_quota(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    first = await imagine(fake_discord, bot, "a paper boat", images=3, state=JobState.DELIVERED)
    await bot.quotas.set_user_limit(world.guild_id, user_id(world.admin), 2)

    clicked = await fake_discord.click_button(
        f"seedream:again:{first.id}", finished_status(fake_discord, first), by=world.admin
    )

    assert "2 images left" in await refused_privately(fake_discord, clicked)
    assert await bot.storage.recent_jobs(world.guild_id, user_id(world.admin)) == []
    assert len(fake_runcomfy.submits) == 1


@pytest.mark.parametrize("action", ["again", "cancel"])
async def test_a_button_of_an_unknown_job_answers_privately(fake_discord, start_bot, action):
    await start_bot()
    world = fake_discord.world
    components = job_view("0123456789ab", cancellable=action == "cancel", finished=action == "again").to_components()
    message = p.message(
        world.ids.next(), world.channel_id, world.bot_user, guild_id=world.guild_id, components=components
    )

    clicked = await fake_discord.click_button(f"seedream:{action}:0123456789ab", message, by=world.member)

    callback = await fake_discord.wait_for_callback(clicked)
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] & p.EPHEMERAL
    assert "don't know this job" in callback.json["data"]["content"]


async def test_again_still_works_after_a_restart(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    first = await imagine(fake_discord, bot, "a paper boat", images=1, state=JobState.DELIVERED)
    await start_bot.stop(bot)

    restarted = await start_imagine_bot(start_bot, fake_runcomfy)
    clicked = await fake_discord.click_button(
        f"seedream:again:{first.id}", finished_status(fake_discord, first), by=world.member
    )

    async def two_jobs() -> list[Job] | None:
        jobs = await restarted.storage.recent_jobs(world.guild_id, user_id(world.member))
        return len(jobs) == 2 and jobs[0].state is JobState.DELIVERED and jobs

    jobs = await eventually(two_jobs)
    assert jobs[0].interaction_token == clicked.token
    assert re.fullmatch(r"[0-9a-f]{12}", jobs[0].id)
