"""A full disk: members get one sentence and nothing is reserved, the log gets one line with the real cause (never
the failed ROLLBACK), and jobs in flight finish once space is back, their images held in memory if need be."""

from __future__ import annotations

import logging
import re
import sqlite3

from bot.discord.tree import STORAGE_UNAVAILABLE
from bot.domain.job_state import JobState
from tests.imagine_helpers import (
    eventually,
    expected_names,
    filenames,
    image_messages,
    imagine,
    job_in,
    private_answer,
    start_imagine_bot,
    usage_of,
)

WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class DiskFull:
    """SQLite on a full disk: every write fails with SQLITE_FULL, which also rolls the open transaction back, so the
    ROLLBACK that follows fails too ("no transaction is active"), as it does on a real full disk. Both ways in are
    covered: statements sent one by one, and blocking bodies run on the database thread (`run_transaction`)."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.db = storage.db
        self.real = self.db.execute_fetchall
        self.real_run = storage.run_transaction
        self.failed_writes = 0

    def _full(self, connection) -> None:
        self.failed_writes += 1
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    async def run_transaction(self, body):
        disk = self

        class FullConnection:
            def __init__(self, connection) -> None:
                self.connection = connection

            def execute(self, sql, parameters=()):
                if WRITES.match(sql):
                    disk._full(self.connection)
                return self.connection.execute(sql, parameters)

            def __getattr__(self, name):
                return getattr(self.connection, name)

        return await self.real_run(lambda connection: body(FullConnection(connection)))

    async def execute_fetchall(self, sql, parameters=None):
        if WRITES.match(sql):
            self.failed_writes += 1
            if self.db.in_transaction:
                await self.real("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return await (self.real(sql) if parameters is None else self.real(sql, parameters))

    def __enter__(self) -> DiskFull:
        self.db.execute_fetchall = self.execute_fetchall
        self.storage.run_transaction = self.run_transaction
        return self

    def __exit__(self, *_exc) -> None:
        self.db.execute_fetchall = self.real
        self.storage.run_transaction = self.real_run


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def test_a_command_on_a_full_disk_gets_one_sentence_and_one_log_line(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)

    with caplog.at_level(logging.DEBUG), DiskFull(bot.storage) as full:
        interaction = await fake_discord.run_command("imagine", {"prompt": "a lighthouse", "images": 2})
        assert await private_answer(fake_discord, interaction) == STORAGE_UNAVAILABLE
    assert full.failed_writes >= 1

    assert await usage_of(bot, fake_discord) == (0, 0) and fake_runcomfy.submits == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "database or disk is full" in errors[0] and "/imagine" in errors[0]
    assert not any("cannot rollback" in m for m in errors) and tracebacks(caplog) == []

    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse", "images": 2})  # space is back
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert job.images_charged == 2


async def test_a_job_in_flight_finishes_once_space_is_back_with_its_images_in_memory(
    fake_discord, fake_runcomfy, start_bot, caplog, tmp_path
):
    (tmp_path / "downloads").write_text("a file where the download folder should be")  # images cannot be written
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=1)
    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a ferry at night", "images": 3})

    with caplog.at_level(logging.INFO), DiskFull(bot.storage) as full:
        fake_runcomfy.complete(job.request_id)
        await eventually(lambda: full.failed_writes >= 2, timeout=10)  # the tracker tried, and tries again
        assert not (await bot.storage.get_job(job.id)).state.terminal

    job = await job_in(bot, job.id, JobState.DELIVERED, timeout=10)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 3)
    assert (job.images_delivered, job.images_charged) == (3, 3)
    assert await usage_of(bot, fake_discord) == (3, 0)
    assert tracebacks(caplog) == []
    assert any("database or disk is full" in r.getMessage() for r in caplog.records)
    assert any("keeping the images in memory" in r.getMessage() for r in caplog.records)
