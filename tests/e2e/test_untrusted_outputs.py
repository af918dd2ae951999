"""What RunComfy and its file hosts send is untrusted: only real images, only as many as asked, are posted."""

from __future__ import annotations

import io
import json
import logging

from PIL import Image

from bot.domain.job_state import JobState
from bot.logging_setup import make_formatter
from tests.imagine_helpers import (
    FAST,
    expected_names,
    filenames,
    image_messages,
    imagine,
    job_in,
    start_imagine_bot,
    status_says,
    usage_of,
)
from tests.secrets_helpers import DISCORD_TOKEN, leaked_pieces, planted_text

HTML_PAGE = b"<!doctype html><html><body><h1>Sign in to continue</h1></body></html>"


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


async def test_a_server_listing_more_images_than_asked_gets_only_the_first_ones_posted(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(extra_urls=17)  # 20 URLs for a 3-image job

    interaction, job = await imagine(fake_discord, bot, {"prompt": "three red kites", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 3)
    assert (job.images_delivered, job.images_charged) == (3, 3)
    assert await usage_of(bot, fake_discord) == (3, 0)
    downloaded = {r.path for r in fake_runcomfy.requests if r.site == "output"}
    assert downloaded == {f"/outputs/{job.request_id}/{i}.png" for i in (1, 2, 3)}
    await status_says(fake_discord, job, "✅ Done — 3 images", interaction)


async def test_a_page_served_as_an_image_is_neither_posted_nor_charged(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.output_bodies[2] = HTML_PAGE

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a map of an island", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    names = filenames(image_messages(fake_discord, job))
    assert names == [f"seedream_{job.id}_01.png", f"seedream_{job.id}_03.png"]
    assert (job.images_delivered, job.images_charged) == (2, 2)
    said = await status_says(fake_discord, job, "✅ Done — 2 of 3 images", interaction)
    assert "1 image could not be downloaded from RunComfy: not charged" in said
    assert await usage_of(bot, fake_discord) == (2, 0)


async def test_a_jpeg_is_posted_under_a_jpeg_name(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.output_bodies[1] = jpeg_bytes()

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "two postcards", "images": 2})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert filenames(image_messages(fake_discord, job)) == [f"seedream_{job.id}_01.jpg", f"seedream_{job.id}_02.png"]
    assert job.images_charged == 2


async def test_tokens_echoed_by_runcomfy_never_reach_discord_or_the_logs(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    caplog.set_level(logging.DEBUG)
    fake_discord.token = DISCORD_TOKEN
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    tokens = (fake_runcomfy.token, DISCORD_TOKEN)
    planted = planted_text(*tokens)
    body = {"error_message": planted, "detail": planted, "message": planted, "error": planted}
    fake_runcomfy.planted = planted
    fake_runcomfy.spellings = {"in_progress": "busy " + planted}
    for route in ("status", "result", "download"):
        fake_runcomfy.fail_next(route, 503, body)
    fake_runcomfy.fail_next("download", 404, body)
    fake_runcomfy.output_bodies[3] = planted.encode()
    fake_runcomfy.next_job(run_seconds=0.2)
    fake_runcomfy.next_job(failure=planted, failure_style="completed")

    first, done = await imagine(fake_discord, bot, {"prompt": "a harbour", "images": 4})
    second, failed = await imagine(fake_discord, bot, {"prompt": "a lighthouse", "images": 2})

    done = await job_in(bot, done.id, JobState.DELIVERED)
    failed = await job_in(bot, failed.id, JobState.FAILED)
    assert done.images_charged == 2  # one image refused by the file host, one that was text
    said = await status_says(fake_discord, failed, "could not generate it (bad credentials: Bearer", second)
    assert len(failed.error) < 150
    await status_says(fake_discord, done, "✅ Done — 2 of 4 images", first)
    sent = [json.dumps(r.json) for r in fake_discord.requests]
    sent += [f.filename for r in fake_discord.requests for f in r.files]
    sent += [f.data.decode("latin-1") for r in fake_discord.requests for f in r.files]
    assert leaked_pieces("\n".join([*sent, said]), *tokens) == []
    formatter = make_formatter(bot.settings)
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "bad credentials" in logged and leaked_pieces(logged, *tokens) == []


async def test_a_redirect_into_the_bots_network_is_not_followed_nor_charged(
    fake_discord, fake_runcomfy, start_bot, internal_service
):
    internal, hits = internal_service
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.output_redirects = [f"{internal}/latest/meta-data.png"]

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a weather vane", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert hits == []
    assert len(filenames(image_messages(fake_discord, job))) == 2 and job.images_charged == 2
    said = await status_says(fake_discord, job, "✅ Done — 2 of 3 images", interaction)
    assert "1 image could not be downloaded from RunComfy: not charged" in said


async def test_a_dripping_image_is_dropped_at_the_download_deadline(fake_discord, fake_runcomfy, start_bot):
    # The bot builds its own client from the settings here, so DOWNLOAD_TIMEOUT_SECONDS is what bounds it.
    bot = await start_bot(
        **FAST,
        runcomfy_base_url=fake_runcomfy.base_url,
        runcomfy_api_token=fake_runcomfy.token,
        download_timeout_seconds=1.0,
    )
    fake_runcomfy.drip[2] = 0.05  # about 2 KB at 20 bytes a second

    interaction, job = await imagine(fake_discord, bot, {"prompt": "three lanterns", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED, timeout=8)
    assert filenames(image_messages(fake_discord, job)) == [f"seedream_{job.id}_01.png", f"seedream_{job.id}_03.png"]
    assert job.images_charged == 2
    said = await status_says(fake_discord, job, "✅ Done — 2 of 3 images", interaction)
    assert "1 image could not be downloaded" in said


async def test_the_job_deadline_covers_delivery(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, job_deadline_seconds=3.0)
    fake_runcomfy.drip[3] = 0.05  # about 2 KB at 20 bytes a second: far past the deadline

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a slow river", "images": 3})

    job = await job_in(bot, job.id, JobState.DELIVERED, timeout=10)
    assert job.finished_at - job.created_at < 8
    assert (job.images_delivered, job.images_charged) == (2, 2)
    said = await status_says(fake_discord, job, "✅ Done — 2 of 3 images; the other 1 given back", interaction)
    assert "time limit passed before 1 image could be delivered: not charged" in said
    assert await usage_of(bot, fake_discord) == (2, 0)


async def test_a_job_whose_every_image_misses_the_deadline_fails_refunded(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, job_deadline_seconds=2.0)
    fake_runcomfy.drip.update({1: 0.05, 2: 0.05})

    interaction, job = await imagine(fake_discord, bot, {"prompt": "two slow clouds", "images": 2})

    job = await job_in(bot, job.id, JobState.FAILED, timeout=8)
    await status_says(fake_discord, job, "could not be delivered within 2 seconds", interaction)
    assert image_messages(fake_discord, job) == []
    assert await usage_of(bot, fake_discord) == (0, 0)
