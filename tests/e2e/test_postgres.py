"""The whole bot on PostgreSQL (DATABASE_URL): /imagine delivered and charged, a refusal at the limit, a job
resumed by the next start, and the server away for a while; on the fake Discord and the fake RunComfy."""

from __future__ import annotations

import logging

import asyncpg

from bot.discord.tree import STORAGE_UNAVAILABLE
from bot.domain.job_state import JobState
from bot.store.errors import DatabaseUnavailable
from tests.imagine_helpers import (
    eventually,
    expected_names,
    filenames,
    image_messages,
    imagine,
    job_in,
    private_answer,
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


class ServerAway:
    """PostgreSQL gone for a while: every statement on the bot's pool fails as a lost connection does."""

    def __init__(self, storage, only: str = "") -> None:
        self.database = storage.postgres
        self.real = self.database.fetchall
        self.only = only
        self.failed = 0

    async def fetchall(self, sql, parameters=()):
        if self.only in sql:
            self.failed += 1
            raise DatabaseUnavailable("PostgreSQL at postgresql://bot:***@db/seedream cannot be reached: gone")
        return await self.real(sql, parameters)

    def __enter__(self) -> ServerAway:
        self.database.fetchall = self.fetchall
        return self

    def __exit__(self, *_exc) -> None:
        self.database.fetchall = self.real


async def test_postgresql_away_gets_one_sentence_then_the_bot_goes_on(
    fake_discord, fake_runcomfy, start_bot, postgres_url, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, database_url=postgres_url)
    with caplog.at_level(logging.ERROR), ServerAway(bot.storage) as away:
        interaction = await fake_discord.run_command("imagine", {"prompt": "a lighthouse", "images": 2})
        assert await private_answer(fake_discord, interaction) == STORAGE_UNAVAILABLE
    assert away.failed >= 1 and fake_runcomfy.submits == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot be reached" in message for message in errors)

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse", "images": 2})  # it is back
    assert (await job_in(bot, job.id, JobState.DELIVERED)).images_charged == 2


async def test_a_request_id_is_recorded_once_postgresql_is_back(fake_discord, fake_runcomfy, start_bot, postgres_url):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, database_url=postgres_url)
    with ServerAway(bot.storage, only="SET request_id") as away:
        interaction = await fake_discord.run_command("imagine", {"prompt": "a ferry", "images": 1})
        await eventually(lambda: away.failed >= 1 and fake_runcomfy.submits)
    job = await eventually(lambda: _job_with_request(bot))
    job = await job_in(bot, job.id, JobState.DELIVERED, timeout=10)
    assert len(fake_runcomfy.submits) == 1 and job.images_charged == 1  # waited for the database, never resubmitted
    assert interaction is not None


async def _job_with_request(bot):
    rows = await bot.storage.fetchall("SELECT id FROM jobs WHERE request_id IS NOT NULL")
    return await bot.storage.get_job(rows[0][0]) if rows else None
