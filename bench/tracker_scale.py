"""Benchmark: 1,000 concurrent jobs followed by one bot process: its CPU time and RSS, and exact-once delivery.

    python bench/tracker_scale.py [--jobs 1000] [--rate 50] [--queue 40,70] [--images 1,4] [--image-kb 32]
                                  [--set NAME=VALUE ...]

The bot runs in its own process (psutil measures it alone) with the default poll and edit settings (or those given
with --set, to measure a trade-off) and a generous quota. `/imagine` commands arrive at --rate per second, each
from its own member; the fake RunComfy queues every job for a random --queue time (so all of them are in flight
together once the last one is submitted), its queue position counting down, then runs it 2 s per image. Outputs
are small PNGs (--image-kb): the memory of big images is measured by bench/delivery_memory.py.

Every job must be delivered exactly once: each of its images posted in one message, no image twice, no job
missing; the database must end with every job `delivered`. Targets: zero missed or duplicated, peak RSS <= 100 MiB,
bot CPU <= 20 ms per job over its whole life, <= 18 bot CPU seconds in the deliver phase (1,000 sets).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    RssSampler,
    World,
    bench_world,
    dispatch_paced,
    finish_time,
    median,
    mib,
    percentile,
    print_table,
    read_job_states,
    run,
    start_time,
    wait_until,
)
from tests.fakes.runcomfy import make_png

TARGET_RSS_MIB = 100.0
TARGET_CPU_MS_PER_JOB = 20.0
TARGET_DELIVER_CPU_S = 18.0
SECONDS_PER_IMAGE = 2.0
QUEUE_SECONDS_PER_POSITION = 2.0
PROMPT = "a lighthouse in a storm, ref {tag}"
TAG = re.compile(r"ref (S\d+)")


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _range(text: str, kind: type) -> tuple:
    low, high = (kind(v) for v in text.split(","))
    return low, high


class Phases:
    """CPU seconds of the bot between named moments."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.marks: list[tuple[str, float, float]] = [("start", time.monotonic(), world.bot.cpu_seconds())]

    def mark(self, name: str) -> None:
        self.marks.append((name, time.monotonic(), self._world.bot.cpu_seconds()))

    def rows(self) -> list[list[object]]:
        rows = []
        for (_, t0, c0), (name, t1, c1) in zip(self.marks, self.marks[1:], strict=False):
            rows.append([name, t1 - t0, c1 - c0, (c1 - c0) / (t1 - t0) * 100 if t1 > t0 else 0.0])
        return rows


def _delivery_check(world: World, images_by_tag: dict[str, int]) -> dict[str, int]:
    """Count jobs delivered exactly once, missed (some image never posted) and duplicated (an image twice)."""
    counts = {"exactly once": 0, "missed": 0, "duplicated": 0, "extra messages": 0}
    for tag, images in images_by_tag.items():
        posts = world.discord.posts_by_token.get(world.interactions[PROMPT.format(tag=tag)].token, [])
        posted = [index for post in posts for index in post.indexes]
        job_ids = {post.job_id for post in posts}
        duplicated = len(posted) != len(set(posted)) or len(job_ids) > 1
        missed = set(posted) != set(range(1, images + 1))
        counts["duplicated"] += duplicated
        counts["missed"] += missed
        counts["exactly once"] += not (duplicated or missed)
        counts["extra messages"] += max(0, len(posts) - 1)  # up to 4 small images always fit in one message
    unknown = {p.job_id for p in world.discord.image_posts if p.token is None}
    counts["duplicated"] += len(unknown)  # channel posts: not expected at all here
    return counts


def _requests_per_job(world: World) -> dict[str, float]:
    """Mean RunComfy polls per job: status polls before and after the start, result polls."""
    jobs = world.runcomfy.jobs
    counts = {"status queued": 0, "status after start": 0, "result": 0}
    for request_id, times in world.poll_calls(("status",)).items():
        if request_id in jobs:
            started = start_time(jobs[request_id])
            counts["status queued"] += sum(t < started for t in times)
            counts["status after start"] += sum(t >= started for t in times)
    counts["result"] = sum(len(t) for i, t in world.poll_calls(("result",)).items() if i in jobs)
    return {k: v / max(1, len(jobs)) for k, v in counts.items()}


async def _run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    await asyncio.gather(*(asyncio.to_thread(make_png, args.image_kb * 1024, i) for i in range(1, args.images[1] + 1)))
    async with bench_world(settings=dict(args.set)) as world:
        await asyncio.sleep(1.0)
        idle_rss = world.bot.rss()
        phases = Phases(world)
        images_by_tag, prompts = {}, []
        for n in range(args.jobs):
            tag, images, queue = f"S{n:05d}", rng.randint(*args.images), rng.uniform(*args.queue)
            images_by_tag[tag] = images
            prompts.append((PROMPT.format(tag=tag), images))
            # Plans go to submissions in arrival order; the images asked may belong to another job: no matter here.
            world.runcomfy.next_job(
                queue_seconds=queue,
                run_seconds=SECONDS_PER_IMAGE * images,
                queue_position=max(1, round(queue / QUEUE_SECONDS_PER_POSITION)),
                image_bytes=args.image_kb * 1024,
            )
        total_images = sum(images_by_tag.values())
        with RssSampler(world.bot, interval=0.02) as sampler:
            interactions = await dispatch_paced(world, prompts, per_second=args.rate)
            await wait_until(lambda: len(world.runcomfy.jobs) >= args.jobs, 120, interval=0.05, what="submissions")
            phases.mark("submit")
            delivered_early = len(world.discord.posts_by_token)
            rss_all_tracked = world.bot.rss()
            first_done = min(finish_time(job) for job in world.runcomfy.jobs.values())
            await asyncio.sleep(max(0.0, first_done - time.monotonic()))
            phases.mark("track (all queued)")
            rss_before_delivery = world.bot.rss()

            def posted() -> bool:
                return sum(len(p.indexes) for p in world.discord.image_posts) >= total_images

            timeout = args.queue[1] + SECONDS_PER_IMAGE * args.images[1] + 180
            try:
                await wait_until(posted, timeout, interval=0.2, what="every image to be posted")
            except TimeoutError as exc:
                print(f"stopped waiting: {exc}; what is missing is counted below")
            phases.mark("deliver")
            last_image = max((p.arrived for p in world.discord.image_posts), default=float("nan"))
            last_finish = max(finish_time(job) for job in world.runcomfy.jobs.values())
            await asyncio.sleep(3.0)  # the last status edits
            phases.mark("settle")
        acks = [world.ack_seconds(i) for i in interactions]
        calls = world.poll_calls()
        requests = _requests_per_job(world)
        rates, delays = [], []
        for job in world.runcomfy.jobs.values():
            tag = TAG.search(job.input["text"]).group(1)
            posts = world.discord.posts_by_token.get(world.interactions[PROMPT.format(tag=tag)].token, [])
            if not posts:
                continue
            first = min(p.arrived for p in posts)
            rates.append(len(calls.get(job.request_id, [])) / ((first - job.submitted_at) / 60))
            delays.append(first - finish_time(job))
        result = {
            "idle_rss": idle_rss,
            "rss_all_tracked": rss_all_tracked,
            "rss_before_delivery": rss_before_delivery,
            "peak_rss": max(sampler.peak, world.bot.peak_rss() or 0),
            "end_rss": world.bot.rss(),
            "in_flight": args.jobs - delivered_early,
            "phases": phases.rows(),
            "cpu_total": phases.marks[-1][2] - phases.marks[0][2],
            "acks_ms": [a * 1000 for a in acks if a is not None],
            "no_ack": sum(a is None for a in acks),
            "deliveries": _delivery_check(world, images_by_tag),
            "rates": rates,
            "delays": delays,
            "problems": await world.bot.log_problems(),
            "edits": world.discord.status_edits,
            "requests": requests,
            "first_finish_to_last_image": last_image - first_done,
            "last_finish_to_last_image": last_image - last_finish,
        }
        await world.bot.stop()
        result["states"] = await asyncio.to_thread(read_job_states, world.folder / "seedream.db")
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="/imagine commands per second")
    parser.add_argument("--queue", type=lambda t: _range(t, float), default=(40.0, 70.0), help="min,max queue s")
    parser.add_argument("--images", type=lambda t: _range(t, int), default=(1, 4), help="min,max images per job")
    parser.add_argument("--image-kb", type=int, default=32, help="size of each output PNG")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--set", action="append", default=[], type=_setting, metavar="NAME=VALUE",
        help="a bot setting instead of its default, e.g. STATUS_QUEUE_EDIT_INTERVAL_SECONDS=30",
    )  # fmt: skip
    args = parser.parse_args()
    print(
        f"{args.jobs} jobs at {args.rate:g}/s | queue {args.queue[0]:g}-{args.queue[1]:g} s | "
        f"{args.images[0]}-{args.images[1]} images, 2 s each, {args.image_kb} KiB PNGs | "
        + (" ".join(f"{k}={v}" for k, v in args.set) or "default poll and edit settings")
    )
    r = run(_run(args))
    peak = mib(r["peak_rss"])
    print_table(["phase", "seconds", "bot CPU s", "bot CPU %"], r["phases"])
    print()
    print_table(
        ["bot RSS MiB", "idle", "all tracked", "before delivery", "peak", "end", "target"],
        [[
            f"{r['in_flight']} in flight", mib(r["idle_rss"]), mib(r["rss_all_tracked"]),
            mib(r["rss_before_delivery"]), peak, mib(r["end_rss"]),
            f"peak <= {TARGET_RSS_MIB:g}: {'ok' if peak <= TARGET_RSS_MIB else 'MISSED'}",
        ]],
    )  # fmt: skip
    print()
    d = r["deliveries"]
    exact = d["missed"] == 0 and d["duplicated"] == 0
    print_table(
        ["deliveries", "exactly once", "missed", "duplicated", "extra messages", "db states", "target"],
        [["jobs", d["exactly once"], d["missed"], d["duplicated"], d["extra messages"], r["states"],
          "ok" if exact else "MISSED"]],
    )  # fmt: skip
    print()
    print_table(
        ["other", "p50", "p99", "max", "note"],
        [
            ["ack ms during the fill", median(r["acks_ms"]), percentile(r["acks_ms"], 0.99), max(r["acks_ms"]),
             f"{r['no_ack']} without ack"],
            ["finish -> first image s", median(r["delays"]), percentile(r["delays"], 0.99), max(r["delays"]), ""],
            ["polls / job-minute", median(r["rates"]), percentile(r["rates"], 0.99), max(r["rates"]), ""],
        ],
    )  # fmt: skip
    per_job = r["cpu_total"] / max(1, len(r["rates"])) * 1000
    deliver_cpu = next(row[2] for row in r["phases"] if row[0] == "deliver")
    print(
        f"status edits: {r['edits']} ({r['edits'] / max(1, len(r['rates'])):.2f} per job); deliver phase wall: "
        f"{r['first_finish_to_last_image']:.1f} s from the first finish to the last image, of which "
        f"{r['last_finish_to_last_image']:.2f} s after the last finish (the finishes are spread by the queue times)"
    )
    print("RunComfy polls per job: " + ", ".join(f"{v:.2f} {k}" for k, v in r["requests"].items()))
    print(
        f"bot CPU {r['cpu_total']:.1f} s in all: {per_job:.1f} ms per job "
        f"(target <= {TARGET_CPU_MS_PER_JOB:g}: {'ok' if per_job <= TARGET_CPU_MS_PER_JOB else 'MISSED'}); "
        f"deliver phase {deliver_cpu:.1f} CPU s "
        f"(target <= {TARGET_DELIVER_CPU_S:g}: {'ok' if deliver_cpu <= TARGET_DELIVER_CPU_S else 'MISSED'})"
    )
    if r["problems"]:
        print(f"{len(r['problems'])} error line(s) in the bot's log, first: {r['problems'][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
