"""/imagine when Discord gets in the way: expired interaction tokens, upload limits, missing permissions, errors."""

from __future__ import annotations

import asyncio
import logging

from bot.domain.job_state import JobState
from tests.fakes import discord_payloads as p
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

TOKEN_LIFETIME = 0.4


async def expired(fake, interaction) -> None:
    """Wait until the fake Discord refuses the interaction's token."""
    fake.expire_tokens_after(TOKEN_LIFETIME)
    age = asyncio.get_running_loop().time() - interaction.created
    await asyncio.sleep(max(0.0, TOKEN_LIFETIME - age) + 0.05)


def replies_to(message, original_id: int | str) -> bool:
    return str((message.get("message_reference") or {}).get("message_id")) == str(original_id)


async def test_after_the_token_expires_status_and_images_go_on_in_the_channel(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a long journey by train", "images": 12})
    await status_says(fake_discord, job, "position 2", interaction)
    original = fake_discord.original_for(interaction)
    await expired(fake_discord, interaction)
    mark = fake_discord.mark()

    fake_runcomfy.start_job(job.request_id)
    said = await status_says(fake_discord, job, "Generating", interaction)
    assert "a long journey by train" in said
    channel_edit = rf"/channels/{original['channel_id']}/messages/{original['id']}$"
    assert fake_discord.find_requests("PATCH", channel_edit, after=mark)  # the reply, edited as a bot message
    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.DELIVERED)
    said = await status_says(fake_discord, job, "✅ Done — 12 images", interaction)
    assert status_message(fake_discord, job, interaction)["id"] == original["id"]  # still the one reply
    images = image_messages(fake_discord, job)
    assert filenames(images) == expected_names(job, 12)
    assert all("webhook_id" not in m and replies_to(m, original["id"]) for m in images)
    assert f"<@{user_id(fake_discord.world.member)}>" in images[0]["content"]
    assert f"/{images[0]['id']})" in said  # the jump link points at the first image message
    assert job.images_charged == 12 and await usage_of(bot, fake_discord) == (12, 0)
    assert not fake_discord.find_requests("PATCH", r"/webhooks/", after=mark + 1)


async def test_the_cancel_button_works_after_the_token_expired(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=3)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a hot air balloon", "images": 2})
    await status_says(fake_discord, job, "position 3", interaction)
    await expired(fake_discord, interaction)

    fake_runcomfy.jobs[job.request_id].queue_position = 1
    await status_says(fake_discord, job, "position 1")
    moved = status_message(fake_discord, job)
    assert moved["id"] == str(job.reply_message_id) and has_cancel(moved)  # the reply, edited in the channel
    click = await fake_discord.click_button(CANCEL_PREFIX + job.id, moved, by=fake_discord.world.member)

    assert "Cancelled" in await private_answer(fake_discord, click)
    await job_in(bot, job.id, JobState.CANCELLED)
    await status_says(fake_discord, job, "🚫 Cancelled")
    assert not has_cancel(status_message(fake_discord, job))
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_a_deleted_reply_moves_the_status_to_the_channel(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse keeper", "images": 2})
    await status_says(fake_discord, job, "position 2", interaction)
    fake_discord._delete(fake_discord.original_for(interaction))  # a moderator removed it

    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.DELIVERED)
    await status_says(fake_discord, job, "✅ Done — 2 images")
    assert "webhook_id" not in status_message(fake_discord, job)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 2)


async def test_a_refused_upload_is_split_into_smaller_messages(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.upload_limit = 5000  # lower than the 10 MiB the guild and the interaction announce
    fake_runcomfy.next_job(image_bytes=3000)
    advertised = fake_discord.world.filesize_limit

    interaction, job = await imagine(
        fake_discord, bot, {"prompt": "postage stamps", "images": 4}, attachment_size_limit=advertised
    )

    job = await job_in(bot, job.id, JobState.DELIVERED)
    images = image_messages(fake_discord, job)
    assert filenames(images) == expected_names(job, 4)
    assert all(sum(a["size"] for a in m["attachments"]) <= 5000 for m in images)
    assert any(r.status == 413 for r in fake_discord.requests)
    said = await status_says(fake_discord, job, "✅ Done — 4 images", interaction)
    assert "split into smaller messages" in said
    assert job.images_charged == 4


async def test_images_too_large_even_as_jpeg_are_linked_and_the_status_says_so(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.upload_limit = 200  # no image fits, whatever its format
    fake_runcomfy.next_job(image_bytes=8000)

    interaction, job = await imagine(
        fake_discord, bot, {"prompt": "maps", "images": 2}, attachment_size_limit=fake_discord.world.filesize_limit
    )

    job = await job_in(bot, job.id, JobState.DELIVERED)
    images = image_messages(fake_discord, job)
    assert filenames(images) == []
    assert [m["content"].count(f"/outputs/{job.request_id}/") for m in images] == [1, 1]
    assert "image 1 of 2" in images[0]["content"] and "image 2 of 2" in images[1]["content"]
    said = await status_says(fake_discord, job, "✅ Done — 2 images", interaction)
    assert "2 images too large to upload even as JPEG: linked below" in said


async def test_a_low_announced_limit_is_met_by_reencoding_without_refusals(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.upload_limit = 7000  # and the interaction announces it
    fake_runcomfy.next_job(image_bytes=6000)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "stained glass", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    images = image_messages(fake_discord, job)
    assert filenames(images) == expected_names(job, 3, "jpg")
    assert not any(r.status == 413 for r in fake_discord.requests)
    said = await status_says(fake_discord, job, "✅ Done — 3 images", interaction)
    assert "3 images converted to JPEG" in said


async def test_missing_permissions_are_announced_privately_while_the_token_lives(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    caplog.set_level(logging.WARNING)
    granted = p.MEMBER_PERMISSIONS & ~p.ATTACH_FILES & ~p.EMBED_LINKS

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a tidy desk", "images": 1}, app_permissions=granted)

    notes = await eventually(lambda: [m for m in fake_discord.followups_for(interaction) if m["flags"] & p.EPHEMERAL])
    assert "missing Embed Links, Attach Files" in notes[0]["content"]
    assert any(str(fake_discord.world.channel_id) in r.getMessage() for r in caplog.records)
    await job_in(bot, job.id, JobState.DELIVERED)  # through the reply, which needs no channel permission


async def test_missing_permissions_after_the_token_expired_are_told_by_dm_and_refunded(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    caplog.set_level(logging.WARNING)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "fireworks", "images": 3})
    await status_says(fake_discord, job, "position 2", interaction)
    await expired(fake_discord, interaction)
    fake_discord.deny_channel(fake_discord.world.channel_id)

    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.FAILED)
    assert "not allowed to post" in job.error
    assert job.images_charged == 0 and await usage_of(bot, fake_discord) == (0, 0)
    dms = await eventually(lambda: [m for c, ms in fake_discord.messages.items() if c != job.channel_id for m in ms])
    assert len(dms) == 1 and f"<#{job.channel_id}>" in dms[0]["content"] and job.id in dms[0]["content"]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("missing permission" in line and str(job.channel_id) in line for line in logged)
    assert image_messages(fake_discord, job) == []


async def test_failed_status_edits_and_image_posts_in_the_channel_are_tried_again(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a bonsai", "images": 3})
    await status_says(fake_discord, job, "position 2", interaction)
    await expired(fake_discord, interaction)
    fake_runcomfy.start_job(job.request_id)
    await status_says(fake_discord, job, "Generating")  # now a channel message of the bot's own
    fake_discord.fail("PATCH", r"^/channels/\d+/messages/\d+$", status=503, times=2)
    fake_discord.fail("POST", r"^/channels/\d+/messages$", status=503, times=2)

    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.DELIVERED)
    await status_says(fake_discord, job, "✅ Done — 3 images")
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 3)
    failed = [(r.method, r.status) for r in fake_discord.requests if r.status == 503]
    assert sorted(failed) == [("PATCH", 503), ("PATCH", 503), ("POST", 503), ("POST", 503)]


async def test_rate_limited_image_posts_are_waited_out_and_posted_once(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.rate_limit("POST", r"^/webhooks/\d+/[^/]+$", retry_after=0.05, times=2)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "sixteen tiny planets", "images": 15})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    images = image_messages(fake_discord, job)
    assert filenames(images) == expected_names(job, 15)
    assert [len(m["attachments"]) for m in images] == [10, 5]
    assert sum(1 for r in fake_discord.requests if r.status == 429) == 2
    assert job.images_charged == 15
    await status_says(fake_discord, job, "✅ Done — 15 images", interaction)


async def test_a_reply_that_cannot_be_shown_moves_the_job_to_the_channel(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.fail("POST", r"/callback$", status=404, code=10062)

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a moth and a lamp", "images": 2})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert job.reply_message_id is None
    await status_says(fake_discord, job, "✅ Done — 2 images")
    assert "webhook_id" not in status_message(fake_discord, job)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 2)
    assert job.images_charged == 2


async def test_missing_permissions_with_the_reply_deleted_are_told_privately(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    caplog.set_level(logging.WARNING)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a fern", "images": 1})
    await status_says(fake_discord, job, "position 2", interaction)
    fake_discord._delete(fake_discord.original_for(interaction))
    fake_discord.deny_channel(fake_discord.world.channel_id)

    fake_runcomfy.delays["download"] = 0.3  # the "uploading" edit finds the reply gone before any image is posted
    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.FAILED)
    notes = await eventually(lambda: [m for m in fake_discord.followups_for(interaction) if m["flags"] & p.EPHEMERAL])
    assert len(notes) == 1 and "can't post in" in notes[0]["content"]
    assert await usage_of(bot, fake_discord) == (0, 0)
    assert any("missing permission" in r.getMessage() for r in caplog.records)
