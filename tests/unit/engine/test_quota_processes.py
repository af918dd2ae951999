"""Exact quotas across processes: 3 bot processes on one database fire 100 reservations at the same moment for one
member limited to 10 images, or against a server budget of 10 images or of 10 images' worth of dollars. Exactly
10 are accepted, on PostgreSQL and on SQLite alike."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from bot.engine.quotas import QuotaDefaults, Quotas
from bot.store.database import Storage
from tests.fixtures.postgres import BACKENDS
from tests.fixtures.storage import GUILD_ID, USER_ID

REPO = Path(__file__).resolve().parents[3]
PROCESSES, ATTEMPTS, LIMIT, PRICE = 3, 100, 10, 30_000
ROLE = 77

# One bot process: opens the database, says "ready", waits for "go", then reserves its share all at once.
WORKER = """
import asyncio, json, sys
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.engine.refusals import QuotaRefused
from bot.store.database import Storage

async def main(url, rule, first, count, guild, user, role, price):
    storage = await Storage.open(url)
    quotas = Quotas(storage, QuotaDefaults(images=10, period="day", max_concurrent=1000), price_per_image=lambda: price)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def attempt(n):
        member = user if rule == "member limit" else user + n
        try:
            await quotas.reserve(guild, member, [role], 1, channel_id=1, options={"n": n})
            return "accepted"
        except QuotaRefused:
            return "refused"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(first, first + count)))
    await storage.close()
    print(json.dumps({"accepted": outcomes.count("accepted"), "refused": outcomes.count("refused")}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])))
"""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _prepare(url: str, rule: str) -> None:
    storage = await Storage.open(url)
    try:
        quotas = Quotas(storage, QuotaDefaults(images=LIMIT, period="day", max_concurrent=1000))
        await quotas.set_guild_defaults(GUILD_ID, images=LIMIT, max_concurrent=1000)
        if rule != "member limit":
            await quotas.set_role_limit(GUILD_ID, ROLE, None)  # members unlimited: only the budget holds
        if rule == "server budget":
            await quotas.set_budget(GUILD_ID, LIMIT)
        elif rule == "dollar budget":
            await quotas.set_budget(GUILD_ID, None, usd_micros=LIMIT * PRICE)
    finally:
        await storage.close()


async def _run_workers(url: str, rule: str) -> list[dict[str, int]]:
    shares = [ATTEMPTS // PROCESSES + (1 if i < ATTEMPTS % PROCESSES else 0) for i in range(PROCESSES)]
    starts = [sum(shares[:i]) for i in range(PROCESSES)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fixed = [str(GUILD_ID), str(USER_ID), str(ROLE), str(PRICE)]
    pipes = {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, url, rule, str(start), str(share), *fixed, env=env, **pipes
        )
        for start, share in zip(starts, shares, strict=True)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert await asyncio.wait_for(worker.stdout.readline(), 60) == b"ready\n"
        for worker in workers:  # every process is connected: let them all go at once
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = await asyncio.wait_for(asyncio.gather(*(worker.communicate() for worker in workers)), 90)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    return [json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs]


@pytest.mark.parametrize("rule", ["member limit", "server budget", "dollar budget"])
async def test_three_processes_100_simultaneous_reservations_accept_exactly_10(database_url: str, rule: str) -> None:
    await _prepare(database_url, rule)
    results = await _run_workers(database_url, rule)

    accepted = sum(result["accepted"] for result in results)
    refused = sum(result["refused"] for result in results)
    assert (accepted, refused) == (LIMIT, ATTEMPTS - LIMIT)
    storage = await Storage.open(database_url)
    try:
        jobs = await storage.fetchall(
            "SELECT count(*), sum(images_reserved), sum(images_reserved * price_micros) FROM jobs"
        )
        assert tuple(jobs[0]) == (LIMIT, LIMIT, LIMIT * PRICE)  # nothing overspent
        counted = await storage.fetchall("SELECT sum(reserved), sum(held_micros) FROM guild_usage_days")
        assert tuple(counted[0]) == (LIMIT, LIMIT * PRICE)
    finally:
        await storage.close()
