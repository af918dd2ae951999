"""A restart at any moment of a job: nothing is submitted twice, delivered twice or charged twice, nothing is lost,
and the Cancel button of a queued job still works."""

from __future__ import annotations

import asyncio
import re
import time

from bot.domain.job_state import JobState
from tests.imagine_helpers import (
    CANCEL_PREFIX,
    eventually,
    expected_names,
    filenames,
    has_cancel,
    image_messages,
    imagine,
    job_in,
    private_answer,
    start_imagine_bot,
    status_message,
    status_says,
    usage_of,
    user_id,
)

FOLLOWUPS = r"^/webhooks/\d+/[^/]+$"


async def restart(start_bot, fake_runcomfy, bot, **settings):
    await start_bot.stop(bot)
    return await start_imagine_bot(start_bot, fake_runcomfy, **settings)


async def assert_delivered_once(fake, bot, job_id: str, count: int) -> None:
    job = await job_in(bot, job_id, JobState.DELIVERED)
    assert filenames(image_messages(fake, job)) == expected_names(job, count)
    assert (job.images_delivered, job.images_charged) == (count, count)
    assert await usage_of(bot, fake) == (count, 0)
    await status_says(fake, job, f"✅ Done — {count} image")


async def test_a_job_still_pending_is_failed_refunded_and_not_sent(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    job, _request = await bot.jobs.create(
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=user_id(world.member),
        role_ids=[],
        prompt="a kettle on a stove",
        images=2,
    )
    assert await usage_of(bot, fake_discord) == (0, 2)

    bot = await restart(start_bot, fake_runcomfy, bot)

    job = await job_in(bot, job.id, JobState.FAILED)
    assert "restarted before it could send" in job.error
    assert fake_runcomfy.submits == []
    assert await usage_of(bot, fake_discord) == (0, 0)
    said = await status_says(fake_discord, job, "⚠️ Failed: the bot restarted before it could send this job")
    assert "2 images given back" in said
    assert "webhook_id" not in status_message(fake_discord, job)  # no reply to edit: a channel message


async def test_a_submitted_job_is_followed_again_not_resubmitted(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.delays["status"] = 30  # the first status check never answers: the job stays "submitted"
    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a lantern in fog", "images": 3})
    assert (await bot.storage.get_job(job.id)).state is JobState.SUBMITTED
    await eventually(lambda: fake_runcomfy.counts["status"] == 1)

    fake_runcomfy.delays["status"] = 0
    bot = await restart(start_bot, fake_runcomfy, bot)

    await assert_delivered_once(fake_discord, bot, job.id, 3)
    assert len(fake_runcomfy.submits) == 1


async def test_a_queued_job_can_be_cancelled_after_a_restart(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=4)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a heron at dawn", "images": 5})
    await status_says(fake_discord, job, "position 4", interaction)

    mark = fake_discord.mark()
    bot = await restart(start_bot, fake_runcomfy, bot)
    shown = await fake_discord.wait_for_request(method="PATCH", path=r"^/webhooks/", after=mark)  # shown again
    assert CANCEL_PREFIX + job.id in str(shown.json["components"])
    assert has_cancel(fake_discord.original_for(interaction))
    click = await fake_discord.click_button(
        CANCEL_PREFIX + job.id, fake_discord.original_for(interaction), by=fake_discord.world.member
    )

    assert "Cancelled" in await private_answer(fake_discord, click)
    job = await job_in(bot, job.id, JobState.CANCELLED)
    await status_says(fake_discord, job, "🚫 Cancelled", interaction)
    assert not has_cancel(fake_discord.original_for(interaction))
    assert fake_runcomfy.state_of(job.request_id) == "cancelled"
    assert len(fake_runcomfy.submits) == 1
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_a_queued_job_finishes_after_a_restart(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a clock tower", "images": 4})
    await status_says(fake_discord, job, "position 2", interaction)

    bot = await restart(start_bot, fake_runcomfy, bot)
    fake_runcomfy.complete(job.request_id)

    await assert_delivered_once(fake_discord, bot, job.id, 4)
    assert len(fake_runcomfy.submits) == 1


async def test_a_job_that_finished_while_the_bot_was_down_is_delivered(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a comet over hills", "images": 2})
    fake_runcomfy.start_job(job.request_id)
    await status_says(fake_discord, job, "Generating", interaction)
    await start_bot.stop(bot)

    fake_runcomfy.complete(job.request_id)
    bot = await start_imagine_bot(start_bot, fake_runcomfy)

    await assert_delivered_once(fake_discord, bot, job.id, 2)
    assert len(fake_runcomfy.submits) == 1


async def test_a_job_done_while_down_is_delivered_even_past_its_deadline(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, job_deadline_seconds=1.0)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a sleepy owl", "images": 1})
    await status_says(fake_discord, job, "position 2", interaction)
    await start_bot.stop(bot)

    fake_runcomfy.complete(job.request_id)
    await asyncio.sleep(max(0.0, job.created_at + 1.05 - time.time()))
    bot = await start_imagine_bot(start_bot, fake_runcomfy, job_deadline_seconds=1.0)

    await assert_delivered_once(fake_discord, bot, job.id, 1)


async def test_a_restart_in_the_middle_of_posting_posts_only_the_rest(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    hold_second_post(fake_discord)
    _interaction, job = await imagine(fake_discord, bot, {"prompt": "fifteen paper cranes", "images": 15})
    await fake_discord.wait_for_request(lambda r: r.status == 429, method="POST", path=FOLLOWUPS)
    assert [len(m["attachments"]) for m in image_messages(fake_discord, job)] == [10]
    assert (await bot.storage.get_job(job.id)).state is JobState.DELIVERING

    bot = await restart(start_bot, fake_runcomfy, bot)

    await assert_delivered_once(fake_discord, bot, job.id, 15)
    assert [len(m["attachments"]) for m in image_messages(fake_discord, job)] == [10, 5]
    assert len(fake_runcomfy.submits) == 1


def hold_second_post(fake) -> None:
    """The second followup is answered with a long 429: the bot waits, and is stopped while it waits."""
    rule = fake.rate_limit("POST", FOLLOWUPS, retry_after=30, times=None)
    posts = 0

    def matches(method: str, path: str) -> bool:
        nonlocal posts
        if method != "POST" or not re.search(FOLLOWUPS, path):
            return False
        posts += 1
        return posts == 2

    rule.matches = matches  # type: ignore[method-assign]


async def test_a_job_whose_submit_was_sent_before_a_crash_ends_unknown_and_refunded(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    job, _request = await bot.jobs.create(
        guild_id=world.guild_id, channel_id=world.channel_id, user_id=user_id(world.member), role_ids=[],
        prompt="a paper boat", images=3,
    )  # fmt: skip
    job = await bot.storage.mark_submitting(job.id)  # the submit left; the process died before RunComfy answered

    bot = await restart(start_bot, fake_runcomfy, bot)

    job = await job_in(bot, job.id, JobState.UNKNOWN)
    assert job.images_charged == 0 and job.request_id is None
    assert await usage_of(bot, fake_discord) == (0, 0)
    await status_says(fake_discord, job, "❔ Outcome unknown: RunComfy did not confirm the job")
    assert [j.id for j in await bot.storage.unknown_outcome_jobs(world.guild_id)] == [job.id]


CHANNEL_POSTS = r"^/channels/\d+/messages$"


async def test_a_followup_discord_took_just_before_a_crash_is_not_posted_again(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    stall = fake_discord.stall_after_accepting("POST", FOLLOWUPS)  # taken by Discord; the bot dies before the answer
    _interaction, job = await imagine(fake_discord, bot, {"prompt": "fifteen paper lanterns", "images": 15})
    await eventually(lambda: stall.hits == 1)
    assert [len(m["attachments"]) for m in image_messages(fake_discord, job)] == [10]
    progress = await bot.storage.get_meta(f"delivery:{job.id}")
    assert '"through": 0' in progress and '"first": 1, "last": 10' in progress  # the part was noted, not its end

    bot = await restart(start_bot, fake_runcomfy, bot)

    await assert_delivered_once(fake_discord, bot, job.id, 15)
    assert [len(m["attachments"]) for m in image_messages(fake_discord, job)] == [10, 5]
    assert fake_discord.find_requests("GET", CHANNEL_POSTS)  # it read the channel back to find the first part


async def test_a_channel_message_discord_took_before_a_crash_is_returned_by_its_nonce(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, images=15)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "fifteen paper kites", "images": 15})
    fake_discord.expire_tokens_after(0.2)  # images go to the channel as the bot's own messages
    await asyncio.sleep(max(0.0, interaction.created + 0.25 - asyncio.get_running_loop().time()))
    fake_discord.fail("GET", CHANNEL_POSTS, status=403, code=50001, times=None)  # and it cannot read them back
    stall = fake_discord.stall_after_accepting("POST", CHANNEL_POSTS)
    fake_runcomfy.complete(job.request_id)
    await eventually(lambda: stall.hits == 1)

    bot = await restart(start_bot, fake_runcomfy, bot)

    await assert_delivered_once(fake_discord, bot, job.id, 15)
    posts = [r for r in fake_discord.find_requests("POST", CHANNEL_POSTS) if r.files]
    assert [len(r.files) for r in posts] == [10, 10, 5]  # the first part was sent twice...
    assert posts[0].json["nonce"] == posts[1].json["nonce"] and posts[1].json["enforce_nonce"] is True
    assert posts[1].response["id"] == image_messages(fake_discord, job)[0]["id"]  # ...and Discord kept one message
