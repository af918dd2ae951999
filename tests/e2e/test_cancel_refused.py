"""A cancel RunComfy refuses with an HTTP status (409 "not now") is answered from the job's real status."""

from __future__ import annotations

import json
import logging

from bot.domain.job_state import JobState
from bot.logging_setup import make_formatter
from tests.e2e.test_imagine_cancel import click_cancel, queued_job
from tests.imagine_helpers import has_cancel, job_in, private_answer, start_imagine_bot, status_says, usage_of
from tests.secrets_helpers import DISCORD_TOKEN, leaked_pieces, planted_text


async def test_a_409_for_a_job_that_started_running_says_it_cannot_be_stopped(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy)
    fake_runcomfy.delays.update(status=0.5, result=0.5)  # the bot has not seen it start yet when the member clicks
    fake_runcomfy.start_job(job.request_id)
    fake_runcomfy.fail_next("cancel", 409, {"error_message": "Request is being processed"})

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)

    answer = await private_answer(fake_discord, click)
    assert "already generating" in answer and "could not be reached" not in answer
    await job_in(bot, job.id, JobState.RUNNING)
    await status_says(fake_discord, job, "Generating", interaction)
    assert not has_cancel(fake_discord.original_for(interaction))
    fake_runcomfy.complete(job.request_id)
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert job.images_charged == 4


async def test_a_409_for_a_job_still_queued_says_the_cancel_failed_and_keeps_the_button(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy)
    fake_runcomfy.fail_next("cancel", 409, {"error_message": "Conflict"})

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)

    answer = await private_answer(fake_discord, click)
    assert "would not cancel the job just now" in answer and "still queued" in answer
    assert (await bot.storage.get_job(job.id)).state is JobState.QUEUED
    assert fake_runcomfy.state_of(job.request_id) == "in_queue"
    assert has_cancel(fake_discord.original_for(interaction))
    assert await usage_of(bot, fake_discord) == (0, 4)

    again = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)
    assert "Cancelled" in await private_answer(fake_discord, again)
    await job_in(bot, job.id, JobState.CANCELLED)
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_a_refused_cancel_echoing_tokens_shows_and_logs_none(fake_discord, fake_runcomfy, start_bot, caplog):
    caplog.set_level(logging.DEBUG)
    fake_discord.token = DISCORD_TOKEN
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    tokens = (fake_runcomfy.token, DISCORD_TOKEN)
    planted = planted_text(*tokens)
    interaction, job = await queued_job(fake_discord, bot, fake_runcomfy)
    fake_runcomfy.planted = planted
    fake_runcomfy.fail_next("cancel", 409, {"error_message": planted, "detail": planted})
    fake_runcomfy.fail_next("status", 400, {"error_message": planted, "detail": planted})

    click = await click_cancel(fake_discord, job, interaction, by=fake_discord.world.member)

    answer = await private_answer(fake_discord, click)
    assert "could not be reached" in answer  # neither the cancel nor the status could be read
    sent = "\n".join(json.dumps(r.json) for r in fake_discord.requests)
    logged = "\n".join(make_formatter(bot.settings).format(record) for record in caplog.records)
    assert "bad credentials" in logged
    assert leaked_pieces(sent + logged, *tokens) == []
