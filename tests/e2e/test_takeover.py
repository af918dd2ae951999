"""End to end: three bot processes share one PostgreSQL database, each on one of three shards. The process whose
shard holds the server takes 30 `/imagine` jobs, then is killed (`kill -9`) while they are all in flight. The two
others take them over once its lease expires: every job ends exactly once, within the lease + 15 s, with nothing
submitted twice, no image posted twice, and each job charged what was posted for it.

Everything runs on 127.0.0.1: the fake Discord and the fake RunComfy in this process, PostgreSQL in a throwaway
cluster (the test is skipped, with the reason, where no PostgreSQL server programs are installed).
"""

from __future__ import annotations

import collections
import json
import logging
import re
import time

import pytest

from tests.fakes import discord_payloads as p
from tests.fakes.runcomfy import FakeRunComfy, JobPlan
from tests.fixtures.bot_processes import LEASE, BotProcess, environment, rows
from tests.imagine_helpers import eventually

JOBS = 30
PROCESSES = 3
IMAGE_NAME = re.compile(r"^seedream_(?P<job>[0-9a-zA-Z_-]+)_(?P<index>\d+)\.\w+$")

pytestmark = pytest.mark.timeout(240)


def posted_images(fake_discord) -> collections.Counter[tuple[str, int]]:
    """(job id, image index) -> in how many Discord messages it appears."""
    posted: collections.Counter[tuple[str, int]] = collections.Counter()
    for messages in fake_discord.messages.values():
        for message in messages:
            for attachment in message.get("attachments", []):
                found = IMAGE_NAME.match(attachment["filename"])
                if found:
                    posted[(found["job"], int(found["index"]))] += 1
    return posted


async def test_killing_the_process_with_30_jobs_in_flight_hands_them_over_exactly_once(
    fake_discord, postgres_url, tmp_path
):
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the killed bot breaks its requests off
    runcomfy = FakeRunComfy(token="takeover-token", plan=JobPlan(queue_seconds=12.0, run_seconds=0.5))
    await runcomfy.start()
    holder = (fake_discord.world.guild_id >> 22) % PROCESSES  # the shard, and so the process, the server is on
    folders = [tmp_path / f"shard{n}" for n in range(PROCESSES)]
    bots = [
        BotProcess(folder, environment(fake_discord, runcomfy, folder, postgres_url, n, PROCESSES))
        for n, folder in enumerate(folders)
    ]
    try:
        for bot in bots:  # one after the other: the first one creates the schema
            await bot.start()
            await bot.wait_ready()
        await eventually(lambda: any(c["name"] == "imagine" for d in fake_discord.commands.values() for c in d))

        tags = [f"takeover{n:02d}" for n in range(JOBS)]
        for n, tag in enumerate(tags):
            member = p.member(p.user(900_000_000_000_000_000 + n, f"member{n}"), [])
            await fake_discord.run_command("imagine", {"prompt": f"{tag} a lighthouse", "images": 2}, by=member)
        await eventually(lambda: len(runcomfy.submits) == JOBS, timeout=60, interval=0.1)
        owners = await eventually(
            lambda: _all_owned(postgres_url), timeout=30, interval=0.2
        )
        unfinished = await rows(postgres_url, "SELECT count(*) FROM jobs WHERE settled = 0")
        assert unfinished[0][0] == JOBS  # all in flight

        await bots[holder].kill()
        killed_at = time.monotonic()
        await eventually(lambda: _all_settled(postgres_url), timeout=LEASE + 15, interval=0.2)
        took = time.monotonic() - killed_at

        jobs = await rows(postgres_url, "SELECT id, state, images_charged, owner, request_id FROM jobs")
        posted = posted_images(fake_discord)
        per_job = collections.Counter(job_id for job_id, _index in posted)
        submits = collections.Counter()
        for request in runcomfy.submits:
            text = json.dumps(request.json)
            submits.update(tag for tag in tags if tag in text)

        assert len(owners) == 1  # one process took all 30
        assert len(jobs) == JOBS and {job["state"] for job in jobs} == {"delivered"}
        assert sorted(submits.values()) == [1] * JOBS  # never resubmitted
        assert [key for key, count in posted.items() if count > 1] == []  # no image posted twice
        assert {job["id"]: job["images_charged"] for job in jobs} == {job["id"]: per_job[job["id"]] for job in jobs}
        assert all(job["images_charged"] == 2 for job in jobs)
        new_owners = {job["owner"] for job in jobs}
        assert owners.isdisjoint(new_owners) and len(new_owners) >= 1
        assert took <= LEASE + 15
    finally:
        for bot in bots:
            await bot.stop()
        await runcomfy.stop()


async def _all_owned(url: str) -> set[str] | None:
    """The owners once every job's submit is recorded (its owner taken, RunComfy's request id saved)."""
    found = await rows(url, "SELECT owner, request_id FROM jobs")
    owners = {row[0] for row in found}
    recorded = all(row[1] is not None for row in found)
    return owners if len(found) == JOBS and recorded and None not in owners else None


async def _all_settled(url: str) -> bool:
    found = await rows(url, "SELECT count(*) FROM jobs WHERE settled = 1")
    return found[0][0] == JOBS
