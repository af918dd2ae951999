"""The Cancel button of /imagine through the real bot: who may use it, and what happens at RunComfy and to the quota."""

from __future__ import annotations

import copy

from bot.domain.job_state import JobState
from tests.fakes import discord_payloads as p
from tests.imagine_helpers import (
    CANCEL_PREFIX,
    has_cancel,
    image_messages,
    imagine,
    job_in,
    private_answer,
    start_imagine_bot,
    status_says,
    usage_of,
)


async def click_cancel(fake, job, interaction, *, by):
    message = fake.original_for(interaction)
    assert has_cancel(message), "the status reply has no Cancel button"
    return await fake.click_button(CANCEL_PREFIX + job.id, message, by=by)


async def queued_job(fake, bot, fake_runcomfy, *, by=None):
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake, bot, {"prompt": "a paper boat on a puddle", "images": 4}, by=by)
    await status_says(fake, job, "position 2", interaction)
    return interaction, job


async def test_the_requester_cancels_a_queued_job_and_gets_the_images_back(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy)
    assert await usage_of(bot, fake_discord) == (0, 4)

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)

    assert "Cancelled" in await private_answer(fake_discord, click)
    job = await job_in(bot, job.id, JobState.CANCELLED)
    assert job.images_charged == 0
    assert await usage_of(bot, fake_discord) == (0, 0)
    assert fake_runcomfy.state_of(job.request_id) == "cancelled"
    await status_says(fake_discord, job, "🚫 Cancelled — 4 images given back", interaction)
    assert not has_cancel(fake_discord.original_for(interaction))
    assert image_messages(fake_discord, job) == []


async def test_a_member_with_manage_server_may_cancel_anyones_job(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy, by=fake_discord.world.member)

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.admin)

    assert "Cancelled" in await private_answer(fake_discord, click)
    await job_in(bot, job.id, JobState.CANCELLED)
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_anyone_else_is_refused_privately_and_the_job_goes_on(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy, by=fake_discord.world.admin)

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)

    callback = await fake_discord.wait_for_callback(click)
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] & p.EPHEMERAL
    assert "Only the member who started this job" in await private_answer(fake_discord, click)
    assert fake_runcomfy.counts["cancel"] == 0
    assert (await bot.storage.get_job(job.id)).state is JobState.QUEUED
    assert has_cancel(fake_discord.original_for(interaction))
    fake_runcomfy.complete(job.request_id)
    await job_in(bot, job.id, JobState.DELIVERED)


async def test_cancel_after_it_started_says_so_and_the_button_goes(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=1)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a glass city at dusk", "images": 2})
    await status_says(fake_discord, job, "position 1", interaction)
    seen = copy.deepcopy(fake_discord.original_for(interaction))  # the reply as the member saw it, with Cancel
    fake_runcomfy.start_job(job.request_id)

    click = await fake_discord.click_button(CANCEL_PREFIX + job.id, seen, by=fake_discord.world.member)

    assert "already generating" in await private_answer(fake_discord, click)
    await status_says(fake_discord, job, "Generating", interaction)
    assert not has_cancel(fake_discord.original_for(interaction))
    assert fake_runcomfy.state_of(job.request_id) == "in_progress"
    fake_runcomfy.complete(job.request_id)
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert job.images_charged == 2
