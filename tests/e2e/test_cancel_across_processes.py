"""End to end: a Cancel click reaches a process other than the one following the job.

Two bot processes on PostgreSQL, one shard each of two. The process whose shard holds the server takes a job that
stays queued at RunComfy and is killed (`kill -9`); the other takes the job over. The first is started again on its
shard, so the member's Cancel click reaches it, not the job's new owner: the job is cancelled at RunComfy and in the
database once, the images go back to the member, and the owner stops following the job at once (LISTEN/NOTIFY).
"""

from __future__ import annotations

import logging

import pytest

from tests.fakes.runcomfy import FakeRunComfy, JobPlan
from tests.fixtures.bot_processes import LEASE, BotProcess, environment, rows
from tests.imagine_helpers import CANCEL_PREFIX, eventually, has_cancel

PROCESSES = 2

pytestmark = pytest.mark.timeout(180)


async def test_a_cancel_clicked_in_one_process_stops_the_job_another_follows(fake_discord, postgres_url, tmp_path):
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the killed bot breaks its requests off
    runcomfy = FakeRunComfy(token="cancel-token", plan=JobPlan(manual=True, queue_position=3))  # stays queued
    await runcomfy.start()
    holder = (fake_discord.world.guild_id >> 22) % PROCESSES
    folders = [tmp_path / f"shard{n}" for n in range(PROCESSES)]
    bots = [
        BotProcess(folder, environment(fake_discord, runcomfy, folder, postgres_url, n, PROCESSES))
        for n, folder in enumerate(folders)
    ]
    other = bots[1 - holder]
    try:
        for bot in bots:
            await bot.start()
            await bot.wait_ready()
        await eventually(lambda: fake_discord.registered_command("imagine"), timeout=10)
        interaction = await fake_discord.run_command("imagine", {"prompt": "a paper boat", "images": 3})

        async def job_row():
            found = await rows(postgres_url, "SELECT id, owner, request_id, state FROM jobs")
            return found[0] if found and found[0]["request_id"] else None

        first = await eventually(job_row, timeout=30)
        await bots[holder].kill()

        async def taken_over():
            row = await job_row()
            return row if row["owner"] != first["owner"] else None

        moved = await eventually(taken_over, timeout=LEASE + 15, interval=0.2)
        assert "took over 1 unfinished job(s)" in other.log_text()
        await bots[holder].start()  # back on its shard: the click goes to it
        await bots[holder].wait_ready()
        message = await eventually(lambda: has_cancel(fake_discord.original_for(interaction)) and
                                   fake_discord.original_for(interaction), timeout=10)  # fmt: skip

        await fake_discord.click_button(CANCEL_PREFIX + first["id"], message, by=fake_discord.world.member)

        ended_sql = "SELECT state, settled, images_charged, owner FROM jobs WHERE state <> 'queued'"
        ended = await eventually(lambda: rows(postgres_url, ended_sql), timeout=10)
        assert [tuple(ended[0])] == [("cancelled", 1, 0, moved["owner"])]
        await eventually(lambda: "cancelled through another process" in other.log_text(), timeout=5)
        assert runcomfy.state_of(first["request_id"]) == "cancelled"
        assert len(runcomfy.requests_for(f"/v1/requests/{first['request_id']}/cancel")) == 1
        usage_sql = "SELECT coalesce(sum(reserved), 0), coalesce(sum(charged), 0) FROM user_usage_days"
        usage = await rows(postgres_url, usage_sql)
        assert tuple(usage[0]) == (0, 0)  # the images went back to the member
    finally:
        for bot in bots:
            await bot.stop()
        await runcomfy.stop()
