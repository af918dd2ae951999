"""Benchmark: several processes on one PostgreSQL database: reservations per second and p99 with 3 processes, and
how long the jobs of a killed process take to move on.

    python bench/multiprocess.py [--processes 3] [--users 10] [--reservations 2000] [--jobs 30] [--lease 60]

Needs PostgreSQL's server programs (`pg_config --bindir`, or /usr/lib/postgresql/*/bin): a throwaway cluster is made
in a temporary folder, listening on 127.0.0.1 and a unix socket there (as the tests do).

1. Reservations: --processes worker processes, each with --users tasks reserving one job after another through
   `Quotas.reserve` (a new reservation as soon as the last returns), first each process in a server of its own,
   then all in one server (every reservation of that server waits for the server's lock). Rate = all timed
   reservations / the wall time from the first start to the last end.
2. Takeover: --processes bot processes (`python -m bot run`, one shard each of --processes) against the fake
   Discord and RunComfy. The one whose shard holds the server takes --jobs `/imagine` jobs that stay queued at
   RunComfy past the lease; it is killed (`kill -9`) and the time until the first of its jobs is taken over, until
   all are, and until all have ended is measured. Checked: each job delivered once, nothing submitted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # type: ignore[import-untyped]

from bench._common import IMAGE_NAME, BotProcess, TimedFakeDiscord, bench_member, bot_environment
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.store.database import Storage
from tests.fakes.runcomfy import FakeRunComfy, JobPlan
from tests.fixtures.postgres import _Server, admin, find_bindir

FAST = {"POLL_INTERVAL_SECONDS": "0.2", "POLL_MAX_INTERVAL_SECONDS": "0.5", "STATUS_EDIT_INTERVAL_SECONDS": "0.2"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- 1. reservations ---------------------------------------------------------------------------------------------


async def worker(url: str, guild_id: int, users: int, reservations: int, start_at: float) -> dict[str, Any]:
    storage = await Storage.open(url)
    quotas = Quotas(storage, QuotaDefaults(images=10**9, period="day", max_concurrent=10**9))
    latencies: list[float] = []
    per_user = max(1, reservations // users)

    async def user(user_id: int, count: int, record: bool) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await quotas.reserve(guild_id, user_id, (10, 20), 4, channel_id=2, options={"prompt": "bench"})
            if record:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(user(1_000_000 + guild_id * 1000 + n, 3, False) for n in range(users)))  # warm-up
    await asyncio.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    await asyncio.gather(*(user(guild_id * 1000 + n, per_user, True) for n in range(users)))
    ended = time.time()
    await storage.close()
    return {"began": began, "ended": ended, "latencies": latencies}


async def reservations(url: str, processes: int, users: int, reservations: int, *, shared_guild: bool) -> dict:
    start_at = time.time() + 3.0  # every worker has connected and warmed up by then
    commands = [
        [sys.executable, __file__, "--worker", url, "--guild", str(1 if shared_guild else n + 1),
         "--users", str(users), "--reservations", str(reservations), "--start-at", str(start_at)]
        for n in range(processes)
    ]  # fmt: skip
    runs = [await asyncio.create_subprocess_exec(*c, stdout=subprocess.PIPE) for c in commands]
    outputs = [json.loads((await run.communicate())[0]) for run in runs]
    latencies = [v for out in outputs for v in out["latencies"]]
    wall = max(out["ended"] for out in outputs) - min(out["began"] for out in outputs)
    return {
        "reservations": len(latencies),
        "seconds": wall,
        "rate": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


# ---- 2. takeover ------------------------------------------------------------------------------------------------


async def rows(url: str, sql: str) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


async def takeover(url: str, folder: Path, processes: int, jobs: int, lease: float) -> dict[str, Any]:
    discord = TimedFakeDiscord()
    runcomfy = FakeRunComfy(token="bench-runcomfy-token", plan=JobPlan(queue_seconds=lease + 10, run_seconds=1.0))
    await discord.start()
    await runcomfy.start()
    bots: list[BotProcess] = []
    try:
        for shard in range(processes):
            place = folder / f"shard{shard}"
            place.mkdir()
            settings = {**FAST, "DATABASE_URL": url, "SHARD_COUNT": str(processes), "SHARD_IDS": str(shard),
                        "LEASE_SECONDS": str(lease)}  # fmt: skip
            bot = BotProcess(place, bot_environment(discord, runcomfy, place, **settings))
            await bot.start(discord)
            bots.append(bot)
        holder = (discord.world.guild_id >> 22) % processes
        tags = [f"bench{n:03d}" for n in range(jobs)]
        for n, tag in enumerate(tags):
            await discord.run_command("imagine", {"prompt": f"{tag} a lighthouse", "images": 2}, by=bench_member(n))

        async def all_owned() -> set[str] | None:  # once every submit is recorded: owner and request id
            found = await rows(url, "SELECT owner, request_id FROM jobs")
            recorded = len(found) == jobs and all(owner and request_id for owner, request_id in found)
            return {owner for owner, _request_id in found} if recorded else None

        waited = time.monotonic()
        while (first_owners := await all_owned()) is None:
            if time.monotonic() - waited > 120:
                raise TimeoutError("the jobs were not all submitted")
            await asyncio.sleep(0.1)
        bots[holder].process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed = time.monotonic()
        moved: dict[str, float] = {}
        while True:
            found = await rows(url, "SELECT id, owner, settled FROM jobs")
            now = time.monotonic() - killed
            for job_id, owner, _settled in found:
                if owner not in first_owners:
                    moved.setdefault(job_id, now)
            if all(settled for _id, _owner, settled in found):
                ended = now
                break
            if now > lease + 120:
                raise TimeoutError("the jobs did not end")
            await asyncio.sleep(0.1)
        posted: collections.Counter[tuple[str, int]] = collections.Counter()
        for messages in discord.messages.values():
            for message in messages:
                for attachment in message.get("attachments", []):
                    if found_name := IMAGE_NAME.match(attachment["filename"]):
                        posted[(found_name["job"], int(found_name["index"]))] += 1
        submits = collections.Counter(
            tag for request in runcomfy.submits for tag in tags if tag in json.dumps(request.json)
        )
        states = collections.Counter(row[0] for row in await rows(url, "SELECT state FROM jobs"))
        return {
            "first_moved": min(moved.values()),
            "all_moved": max(moved.values()),
            "all_ended": ended,
            "states": dict(states),
            "posted_twice": sum(1 for count in posted.values() if count > 1),
            "submitted_twice": sum(1 for count in submits.values() if count > 1),
            "log_errors": sum([len(await bot.log_problems()) for n, bot in enumerate(bots) if n != holder]),
        }
    finally:
        for bot in bots:
            await bot.stop()
        await runcomfy.stop()
        await discord.close()


# ---- main -------------------------------------------------------------------------------------------------------


async def _main(args: argparse.Namespace, urls: dict[str, str], folder: Path) -> bool:
    ok = True
    print(f"1. reservations, {args.processes} processes x {args.users} users on PostgreSQL")
    print(f"{'servers':<22} {'reserved':>8} {'seconds':>8} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for shared in (False, True):
        url = urls[f"reserve{int(shared)}"]
        r = await reservations(url, args.processes, args.users, args.reservations, shared_guild=shared)
        label = "one for all" if shared else "one per process"
        print(f"{label:<22} {r['reservations']:>8} {r['seconds']:>8.2f} {r['rate']:>8.0f} "
              f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f}")  # fmt: skip
    print(f"\n2. takeover: {args.jobs} jobs in flight, kill -9 of their process, LEASE_SECONDS={args.lease:g}")
    t = await takeover(urls["takeover"], folder, args.processes, args.jobs, args.lease)
    print(f"first job taken over {t['first_moved']:.1f} s after the kill, all {t['all_moved']:.1f} s, "
          f"all ended {t['all_ended']:.1f} s; states {json.dumps(t['states'])}; posted twice {t['posted_twice']}, "
          f"submitted twice {t['submitted_twice']}, error lines in the survivors' logs {t['log_errors']}")  # fmt: skip
    met = t["all_ended"] <= args.lease + 15 and t["states"] == {"delivered": args.jobs}
    met &= t["posted_twice"] == 0 and t["submitted_twice"] == 0
    print(f"target: all ended exactly once within lease + 15 s: {'ok' if met else 'MISSED'}")
    return ok and met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--users", type=int, default=10, help="reserving tasks per process")
    parser.add_argument("--reservations", type=int, default=2000, help="timed reservations per process")
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--lease", type=float, default=60.0, help="LEASE_SECONDS of the bot processes")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--guild", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = asyncio.run(worker(args.worker, args.guild, args.users, args.reservations, args.start_at))
        print(json.dumps(result))
        return 0
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the killed bot breaks its requests off
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL server programs not found (pg_config --bindir, /usr/lib/postgresql/*/bin)", file=sys.stderr)
        return 2
    server = _Server(bindir)
    cluster = server.start()
    try:
        names = ("reserve0", "reserve1", "takeover")  # a fresh database for each part
        admin(cluster, *(f"CREATE DATABASE {name}" for name in names))
        with tempfile.TemporaryDirectory(prefix="seedream-multi-") as tmp:
            return 0 if asyncio.run(_main(args, {name: cluster.url(name) for name in names}, Path(tmp))) else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
