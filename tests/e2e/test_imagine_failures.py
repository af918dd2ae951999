"""/imagine when RunComfy misbehaves: transient errors are retried unseen; real failures end the job with a clear
reason and a full refund."""

from __future__ import annotations

import logging

import pytest

from bot.domain.job_state import JobState
from tests.e2e.test_quota_admin import quota as quota_answer
from tests.imagine_helpers import (
    embed_text,
    eventually,
    expected_names,
    filenames,
    image_messages,
    imagine,
    job_in,
    start_imagine_bot,
    status_says,
    usage_of,
    user_id,
)


def everything_shown(fake) -> str:
    """Every status render and message the bot sent, edits included."""
    sent = [r.json for r in fake.requests if r.method in ("POST", "PATCH") and isinstance(r.json, dict)]
    sent += [r.json.get("data") for r in fake.requests if isinstance(r.json, dict) and r.json.get("data")]
    return "\n".join(embed_text(payload) for payload in sent if isinstance(payload, dict))


async def test_bursts_of_5xx_and_429_are_retried_and_never_shown(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(queue_seconds=0.2, queue_position=2)
    fake_runcomfy.fail_next("status", 503, times=2)
    fake_runcomfy.fail_next("status", 429, times=1, retry_after=0)
    fake_runcomfy.fail_next("status", 502, times=5)  # more than the client retries in a row: the tracker goes on
    fake_runcomfy.fail_next("result", 500, times=2)
    fake_runcomfy.fail_next("download", 503, times=2)
    fake_runcomfy.fail_next("download", 429, times=1, retry_after=0)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a koi pond in autumn", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert job.images_charged == 3
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 3)
    await status_says(fake_discord, job, "✅ Done — 3 images", interaction)
    shown = everything_shown(fake_discord)
    assert "Failed" not in shown and "busy" not in shown and "trouble" not in shown
    assert len(fake_runcomfy.submits) == 1


async def test_a_refused_token_is_told_politely_and_logged_for_admins(fake_discord, fake_runcomfy, start_bot, caplog):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    real_token = fake_runcomfy.token
    fake_runcomfy.token = "a-token-the-bot-does-not-have"
    caplog.set_level(logging.INFO)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a snow globe", "images": 2})

    job = await job_in(bot, job.id, JobState.FAILED)
    said = await status_says(fake_discord, job, "RunComfy API key was refused", interaction)
    assert "ask the bot's owner" in said and "2 images given back" in said
    assert await usage_of(bot, fake_discord) == (0, 0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("RUNCOMFY_API_TOKEN" in r.getMessage() for r in errors)
    assert all(real_token not in r.getMessage() for r in caplog.records)
    assert real_token not in everything_shown(fake_discord)


@pytest.mark.parametrize("style", ["failed", "completed"])
async def test_a_failed_job_shows_the_reason_and_is_refunded(fake_discord, fake_runcomfy, start_bot, style):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(failure="The prompt was flagged by the content filter", failure_style=style)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "something odd", "images": 4})

    job = await job_in(bot, job.id, JobState.FAILED)
    said = await status_says(fake_discord, job, "⚠️ Failed: RunComfy could not generate it", interaction)
    assert "flagged by the content filter" in said and "4 images given back" in said
    assert job.images_charged == 0 and await usage_of(bot, fake_discord) == (0, 0)
    assert image_messages(fake_discord, job) == []


async def test_an_unconfirmed_submission_is_reported_honestly_and_not_sent_again(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.fail_next("submit", 500)

    with caplog.at_level(logging.ERROR, logger="bot.engine.outcome_unknown"):
        interaction, job = await imagine(fake_discord, bot, {"prompt": "a windmill", "images": 1})
        job = await job_in(bot, job.id, JobState.UNKNOWN)

    said = await status_says(fake_discord, job, "Outcome unknown", interaction)
    assert "may have been made (and billed)" in said and "not sent again" in said
    assert "1 image given back" in said
    assert len(fake_runcomfy.submits) == 1
    assert await usage_of(bot, fake_discord) == (0, 0)
    assert job.submitted_at is not None and job.request_id is None
    (record,) = [r for r in caplog.records if "outcome unknown" in r.getMessage()]
    assert "Generations page" in record.getMessage() and job.id in str(vars(record))
    shown = await quota_answer(fake_discord, "show")
    assert "Sets with an unknown outcome" in shown
    assert f"<@{user_id(fake_discord.world.member)}>, sent <t:{int(job.submitted_at)}:f>" in shown


async def test_a_job_stuck_past_its_deadline_fails_refunded_and_is_cancelled_at_runcomfy(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, job_deadline_seconds=1.0)
    fake_runcomfy.next_job(manual=True, queue_position=30)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a slow snail", "images": 3})

    job = await job_in(bot, job.id, JobState.FAILED, timeout=4)
    await status_says(fake_discord, job, "RunComfy did not finish it within 1 second", interaction)
    assert await usage_of(bot, fake_discord) == (0, 0)
    assert fake_runcomfy.state_of(job.request_id) == "cancelled"  # so it is not run, and paid, later


async def test_expired_outputs_end_the_job_expired_and_refunded(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.expire_after = 0.0  # every output URL answers 404 once the job finished

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a sandcastle at high tide", "images": 3})

    job = await job_in(bot, job.id, JobState.EXPIRED)
    said = await status_says(fake_discord, job, "could not be downloaded from RunComfy", interaction)
    assert "3 images given back" in said
    assert job.images_charged == 0 and await usage_of(bot, fake_discord) == (0, 0)
    assert image_messages(fake_discord, job) == []


async def test_a_request_runcomfy_forgot_ends_expired(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.fail_next("result", 404)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a lost kite", "images": 2})

    job = await job_in(bot, job.id, JobState.EXPIRED)
    await status_says(fake_discord, job, "RunComfy no longer knows this job", interaction)
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_an_image_that_cannot_be_downloaded_is_not_charged(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.fail_next("download", 404)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "four seasons of one tree", "images": 4})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert (job.images_delivered, job.images_charged) == (3, 3)
    assert len(filenames(image_messages(fake_discord, job))) == 3
    said = await status_says(fake_discord, job, "✅ Done — 3 of 4 images", interaction)
    assert "1 image could not be downloaded from RunComfy: not charged" in said
    assert await usage_of(bot, fake_discord) == (3, 0)


async def test_a_submit_refused_with_429_is_retried(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.fail_next("submit", 429, retry_after=0)

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a lantern festival", "images": 1})

    job = await job_in(bot, job.id, JobState.DELIVERED, JobState.FAILED)
    assert job.state is JobState.DELIVERED
    assert len(fake_runcomfy.submits) == 2  # the refused one and the accepted one


async def test_an_unexpected_error_before_submitting_gives_the_images_back(
    fake_discord, fake_runcomfy, start_bot, monkeypatch
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)

    async def broken_submit(job):
        raise RuntimeError("storage hiccup")

    monkeypatch.setattr(bot.jobs, "submit", broken_submit)
    interaction = await fake_discord.run_command("imagine", {"prompt": "a teapot", "images": 2})

    async def failed():
        jobs = await bot.storage.recent_jobs(fake_discord.world.guild_id, int(fake_discord.world.member["user"]["id"]))
        return jobs and jobs[0].state is JobState.FAILED and jobs[0]

    job = await eventually(failed)
    assert await usage_of(bot, fake_discord) == (0, 0)
    await status_says(fake_discord, job, "something went wrong before it could be sent to RunComfy", interaction)
    assert fake_runcomfy.submits == []
    notes = await eventually(lambda: [m for m in fake_discord.followups_for(interaction) if m["flags"] & 64])
    assert "Something went wrong on my side" in notes[0]["content"]
