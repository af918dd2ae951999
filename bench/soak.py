"""Soak: `/imagine` jobs while the bot is killed (`kill -9`) at random moments and started again, then every
invariant is checked.

    python bench/soak.py [--jobs 45] [--kills 22] [--members 12] [--quota 60] [--seed 1]

The bot runs in its own process against the fakes (see `_common.py`), with fast polling. Members (a few of them
busy enough to run into their quota) send `/imagine` with 1-15 images (0.2-2 MB PNGs, so sets take several
messages) while a killer sends SIGKILL after a random 0.5-4 s and starts the bot again at once, --kills times;
commands go on between kills. Kills land during reservation, submission, polling, download, upload and settlement
alike (the states of the jobs in flight at each kill are counted). Once every job has ended, the bot is stopped
and these are checked:

- every job ended: delivered, cancelled, failed or expired (or "outcome unknown", counted apart);
- nothing was submitted twice (each job's prompt carries a unique tag: at most one submit per tag);
- each job's charge equals the images posted for it in Discord;
- no image was posted twice (each job's image index appears in at most one message);
- no member went over the quota, and no reservation is left;
- the database's usage counters agree with its jobs.

Exit status 0 when every invariant holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    IMAGE_NAME,
    BotProcess,
    TimedFakeDiscord,
    bench_member,
    bot_environment,
    run,
    wait_until,
)
from tests.fakes.runcomfy import FakeRunComfy, JobPlan

FAST = {"POLL_INTERVAL_SECONDS": "0.2", "POLL_MAX_INTERVAL_SECONDS": "0.5", "STATUS_EDIT_INTERVAL_SECONDS": "0.2"}
FINISH_TIMEOUT = 180.0
TERMINAL = ("delivered", "cancelled", "failed", "expired", "unknown")


class KillableBot(BotProcess):
    async def start(self, fake_discord: TimedFakeDiscord) -> None:
        # The next heartbeat says this process is ready.
        await asyncio.to_thread(Path(self.env["HEARTBEAT_PATH"]).unlink, missing_ok=True)
        await super().start(fake_discord)

    async def kill(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        await self._proc.wait()


def db_rows(database: Path, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
    """Blocking: rows of a read-only query (the bot may be running: SQLite's WAL lets readers in)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, parameters).fetchall()


class Soak:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.folder = folder
        self.database = folder / "seedream.db"
        self.discord = TimedFakeDiscord()
        self.runcomfy = FakeRunComfy(token="soak-runcomfy-token")
        self.bot = KillableBot(folder, {})  # its environment once the fakes listen
        self.weights = [1 / (n + 1) for n in range(args.members)]  # a few busy members run into their quota
        self.up = asyncio.Event()
        self.commands = 0
        self.tags: dict[str, int] = {}  # tag -> member number
        self.kill_states: collections.Counter[str] = collections.Counter()
        self.kills = 0
        self.restart_seconds: list[float] = []

    async def jobs_created(self) -> int:
        rows = await asyncio.to_thread(db_rows, self.database, "SELECT count(*) FROM jobs")
        return rows[0][0]

    async def send_commands(self) -> None:
        while self.commands < self.args.max_commands and await self.jobs_created() < self.args.jobs:
            await self.up.wait()
            member = self.rng.choices(range(self.args.members), self.weights)[0]
            tag = f"soak{self.commands:03d}"
            self.runcomfy.plan = JobPlan(
                queue_seconds=self.rng.uniform(0.2, 3.0),
                run_seconds=self.rng.uniform(0.2, 2.0),
                queue_position=self.rng.randint(1, 6),
                image_bytes=self.rng.randint(200_000, 2_000_000),
            )
            options = {"prompt": f"{tag} a lighthouse in a storm", "images": self.rng.randint(1, 15)}
            self.tags[tag] = member
            self.commands += 1
            await self.discord.run_command("imagine", options, by=bench_member(member))
            await asyncio.sleep(self.rng.uniform(0.1, 0.8))

    async def kill_and_restart(self) -> None:
        for _ in range(self.args.kills):
            await asyncio.sleep(self.rng.uniform(0.5, 4.0))
            self.up.clear()
            await self.bot.kill()
            self.kills += 1
            states = await asyncio.to_thread(
                db_rows, self.database, "SELECT state, count(*) FROM jobs WHERE settled = 0 GROUP BY state"
            )
            self.kill_states.update({row[0]: 1 for row in states})  # kills that caught a job in this state
            started = time.monotonic()
            await self.bot.start(self.discord)
            self.restart_seconds.append(time.monotonic() - started)
            self.up.set()

    async def run(self) -> dict[str, Any]:
        await self.discord.start()
        await self.runcomfy.start()
        settings = {**FAST, "QUOTA_DEFAULT_IMAGES": str(self.args.quota), "QUOTA_MAX_CONCURRENT_JOBS": "5"}
        self.bot.env = bot_environment(self.discord, self.runcomfy, self.folder, **settings)
        try:
            await self.bot.start(self.discord)
            self.up.set()
            await asyncio.gather(self.send_commands(), self.kill_and_restart())
            await wait_until(self.all_settled_sync, FINISH_TIMEOUT, interval=0.5, what="every job to end")
            await self.bot.stop()
            return await asyncio.to_thread(self.check)
        finally:
            await self.bot.stop()
            await self.runcomfy.stop()
            await self.discord.close()

    def all_settled_sync(self) -> bool:
        return not db_rows(self.database, "SELECT 1 FROM jobs WHERE settled = 0 LIMIT 1")

    # ---- the invariants -------------------------------------------------------------------------------------------

    def posted_images(self) -> collections.Counter[tuple[str, int]]:
        """(job id, image index) -> in how many stored Discord messages it appears."""
        posted: collections.Counter[tuple[str, int]] = collections.Counter()
        for messages in self.discord.messages.values():
            for message in messages:
                for attachment in message["attachments"]:
                    found = IMAGE_NAME.match(attachment["filename"])
                    if found:
                        posted[(found["job"], int(found["index"]))] += 1
        return posted

    def check(self) -> dict[str, Any]:
        jobs = db_rows(self.database, "SELECT * FROM jobs")
        posted = self.posted_images()
        by_job = collections.Counter(job_id for job_id, _index in posted)
        submits = collections.Counter()
        for request in self.runcomfy.submits:
            text = json.dumps(request.json)
            submits.update(tag for tag in self.tags if tag in text)
        known_requests = {job["request_id"] for job in jobs if job["request_id"]}
        quota = self.args.quota
        charged_by_member: collections.Counter[int] = collections.Counter()
        for job in jobs:
            charged_by_member[job["user_id"]] += job["images_charged"]
        counted = db_rows(self.database, "SELECT sum(charged), sum(reserved) FROM user_usage_days")[0]
        failures = {
            "jobs not ended": [j["id"] for j in jobs if j["state"] not in TERMINAL or not j["settled"]],
            "tags submitted twice": [tag for tag, count in submits.items() if count > 1],
            "charge != posted": [
                (j["id"], j["images_charged"], by_job[j["id"]]) for j in jobs if j["images_charged"] != by_job[j["id"]]
            ],
            "images posted twice": [key for key, count in posted.items() if count > 1],
            "members over quota": [member for member, charged in charged_by_member.items() if charged > quota],
            "usage counters off": [] if tuple(counted) == (sum(charged_by_member.values()), 0) else [tuple(counted)],
        }
        states = collections.Counter(job["state"] for job in jobs)
        ended_badly = [j for j in jobs if j["state"] in ("failed", "unknown")]
        reasons = collections.Counter(f"{j['state']}: {j['error']}" for j in ended_badly)
        return {
            "reasons": dict(reasons),
            "failures": failures,
            "jobs": len(jobs),
            "states": dict(states),
            "commands": self.commands,
            "kills": self.kills,
            "kill_states": dict(self.kill_states),
            "images_posted": sum(posted.values()),
            "images_charged": sum(charged_by_member.values()),
            "submits": len(self.runcomfy.submits),
            "billed_unseen": sum(1 for rid in self.runcomfy.jobs if rid not in known_requests),
            "restart_median_s": sorted(self.restart_seconds)[len(self.restart_seconds) // 2],
        }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="seedream-soak-") as tmp:
        soak = Soak(args, Path(tmp))
        result = await soak.run()
        result["log_errors"] = len(await soak.bot.log_problems())
        return result


def main() -> int:
    # A killed bot breaks its uploads off mid-request; the fake's web server would print each one as an error.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=45, help="jobs to create (refused commands do not count)")
    parser.add_argument("--max-commands", type=int, default=120, help="stop sending after this many commands")
    parser.add_argument("--kills", type=int, default=22)
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--quota", type=int, default=60, help="images per member and day")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    result = run(_main(args))
    took = time.monotonic() - started
    without_job = result["commands"] - result["jobs"]
    print(f"{result['commands']} commands ({without_job} refused over quota or lost to a kill), "
          f"{result['jobs']} jobs, {result['kills']} kills (kill -9), {took:.0f} s; "
          f"restart to ready: median {result['restart_median_s']:.2f} s")  # fmt: skip
    print("job states at the end:", json.dumps(result["states"], sort_keys=True))
    print("kills that caught a job in each state:", json.dumps(result["kill_states"], sort_keys=True))
    for reason, count in sorted(result["reasons"].items()):
        print(f"  {count} x {reason}")
    print(f"submits {result['submits']}, images posted {result['images_posted']}, charged {result['images_charged']}, "
          f"outcome unknown {result['states'].get('unknown', 0)}, billed but unseen {result['billed_unseen']}, "
          f"error lines in the bot's log {result['log_errors']}")  # fmt: skip
    failed = {name: found for name, found in result["failures"].items() if found}
    for name in result["failures"]:
        print(f"MISSED {name}: {failed[name][:5]}" if name in failed else f"ok     {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
