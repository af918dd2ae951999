"""Discord answers that trying again cannot fix (a deleted channel, missing access) stop posting at once."""

from __future__ import annotations

import logging
import re

import discord

from bot.discord.post_refusal import describe, is_permanent
from bot.domain.job_state import JobState
from tests.e2e.test_imagine_discord import expired
from tests.imagine_helpers import eventually, image_messages, imagine, job_in, make_job, start_imagine_bot, usage_of

FOLLOWUPS = r"^/webhooks/\d+/[^/]+$"


def channel_deleted_after(fake, path: str, image_posts: int) -> None:
    """Once `image_posts` messages with files were posted to `path`, every request there answers 404 10003."""
    rule = fake.fail(None, path, status=404, code=10003, times=None)
    posted = 0

    def matches(method: str, request_path: str) -> bool:
        nonlocal posted
        if not re.search(path, request_path):
            return False
        if posted >= image_posts:
            return True
        posted += method == "POST"
        return False

    rule.matches = matches  # type: ignore[method-assign]


def dms(fake, job) -> list[dict]:
    return [m for channel, messages in fake.messages.items() if channel != job.channel_id for m in messages]


async def test_a_channel_deleted_while_posting_stops_at_once_and_charges_what_was_posted(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    caplog.set_level(logging.WARNING)
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "twelve stepping stones", "images": 12})
    await eventually(lambda: fake_discord.original_for(interaction))
    await expired(fake_discord, interaction)
    channel_path = rf"^/channels/{job.channel_id}/messages"
    channel_deleted_after(fake_discord, channel_path, image_posts=1)  # 10 images fit the first message, 2 do not

    fake_runcomfy.complete(job.request_id)

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert (job.images_delivered, job.images_charged) == (10, 10)
    assert await usage_of(bot, fake_discord) == (10, 0)
    uploads = [r for r in fake_discord.requests if r.method == "POST" and re.search(channel_path, r.path) and r.files]
    assert len(uploads) == 2  # the one that worked, and the one Discord refused: never tried again
    [dm] = await eventually(lambda: dms(fake_discord, job))
    assert "no longer exists" in dm["content"] and job.id in dm["content"]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("no longer exists" in line and "Unknown Channel" in line for line in logged)
    assert not any("kept refusing" in line for line in logged)


async def test_a_deleted_channel_behind_the_reply_fails_the_job_refunded_without_retries(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.fail("POST", FOLLOWUPS, status=404, code=10003, times=None)

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a lost channel", "images": 3})

    job = await job_in(bot, job.id, JobState.FAILED)
    assert "the channel no longer exists" in job.error
    assert job.images_charged == 0 and await usage_of(bot, fake_discord) == (0, 0)
    assert len([r for r in fake_discord.requests if re.search(FOLLOWUPS, r.path) and r.files]) == 1
    assert image_messages(fake_discord, job) == []
    [dm] = await eventually(lambda: dms(fake_discord, job))
    assert "no longer exists" in dm["content"]


class _Answer:
    def __init__(self, status: int) -> None:
        self.status, self.reason = status, "x"


def http_error(kind, status: int, code: int) -> discord.HTTPException:
    return kind(_Answer(status), {"message": "x", "code": code})


def test_which_discord_errors_are_permanent():
    assert is_permanent(http_error(discord.NotFound, 404, 10003))
    assert is_permanent(http_error(discord.NotFound, 404, 10008))
    assert is_permanent(http_error(discord.HTTPException, 404, 10015))
    assert is_permanent(http_error(discord.Forbidden, 403, 50001))
    assert is_permanent(http_error(discord.Forbidden, 403, 50013))
    assert not is_permanent(http_error(discord.HTTPException, 500, 0))
    assert not is_permanent(http_error(discord.HTTPException, 429, 0))


def test_the_log_line_names_what_is_missing():
    class NoCache:
        def get_channel(self, _id):
            return None

    job = make_job(channel_id=55, guild_id=7)
    gone = describe(NoCache(), job, http_error(discord.NotFound, 404, 10003))
    assert gone.channel_gone and "channel 55 of guild 7 no longer exists" in gone.log_line
    denied = describe(NoCache(), job, http_error(discord.Forbidden, 403, 50013))
    assert not denied.channel_gone and "Missing Permissions" in denied.log_line and "Attach Files" in denied.log_line


async def test_the_requester_is_told_in_their_own_language(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_discord.fail("POST", FOLLOWUPS, status=404, code=10003, times=None)

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "ein verlorener Kanal", "images": 3}, locale="de")

    await job_in(bot, job.id, JobState.FAILED)
    [dm] = await eventually(lambda: dms(fake_discord, job))
    assert dm["content"] == (
        f"Den Kanal <#{job.channel_id}> gibt es nicht mehr, daher konnte dein Seedream-Auftrag `{job.id}` dort nicht "
        "gepostet werden; nicht gepostete Bilder werden nicht berechnet."
    )
