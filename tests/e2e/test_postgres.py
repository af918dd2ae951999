"""The whole bot on PostgreSQL (DATABASE_URL): /imagine delivered and charged, a refusal at the limit, and a job
resumed by the next start, on the fake Discord and the fake RunComfy."""

from __future__ import annotations

import asyncpg

from bot.domain.job_state import JobState
from tests.imagine_helpers import (
    expected_names,
    filenames,
    image_messages,
    imagine,
    job_in,
    refused_privately,
    start_imagine_bot,
    usage_of,
)


async def test_imagine_on_postgresql_is_delivered_charged_and_kept_there(
    fake_discord, fake_runcomfy, start_bot, postgres_url
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, database_url=postgres_url, quota_default_images=5)
    assert bot.storage.dialect == "postgresql"
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse in a storm", "images": 4})
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 4)
    assert await usage_of(bot, fake_discord) == (4, 0)

    interaction = await fake_discord.run_command("imagine", {"prompt": "two more", "images": 2})
    refusal = await refused_privately(fake_discord, interaction)
    assert "1 image left" in refusal and "needs 2" in refusal, refusal

    connection = await asyncpg.connect(postgres_url)
    try:
        row = await connection.fetchrow("SELECT state, images_charged, settled FROM jobs WHERE id = $1", job.id)
    finally:
        await connection.close()
    assert tuple(row) == ("delivered", 4, 1)


async def test_an_unfinished_job_on_postgresql_is_resumed_by_the_next_start(
    fake_discord, fake_runcomfy, start_bot, postgres_url
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, database_url=postgres_url)
    fake_runcomfy.next_job(manual=True, queue_position=1)
    _, job = await imagine(fake_discord, bot, {"prompt": "slow one", "images": 2})
    job = await job_in(bot, job.id, JobState.QUEUED, JobState.SUBMITTED)
    await start_bot.stop(bot)

    fake_runcomfy.complete(job.request_id)
    again = await start_imagine_bot(start_bot, fake_runcomfy, database_url=postgres_url)
    finished = await job_in(again, job.id, JobState.DELIVERED, timeout=10)
    assert finished.images_charged == 2 and len(fake_runcomfy.submits) == 1  # resumed, not submitted again
