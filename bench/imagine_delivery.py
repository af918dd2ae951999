"""Benchmark: delay from RunComfy finishing a job to its first image message, and polls per job-minute.

    python bench/imagine_delivery.py [--jobs 40] [--gap 1.0] [--queue 5,20] [--images 1,8] [--image-kb 1024]
                                     [--vary 0.3]

The bot runs in its own process with the DEFAULT poll and edit settings (POLL_INTERVAL_SECONDS,
POLL_MAX_INTERVAL_SECONDS, STATUS_EDIT_INTERVAL_SECONDS from bot/settings.py) and a fresh database (nothing
learned yet). One `/imagine` arrives every --gap seconds, each asking a random number of images; the fake RunComfy
queues each job for a random time (its queue position counting down from about one per 2 s of waiting), then runs
it 2 s per image, or with --vary V a random 2 s × (1 ± V) per image. A job's start and completion are when the
fake's timeline says so (queue, then queue + run after its submission), whether or not anyone asked yet.

Split of the delay: "detection" runs to the first poll (status or result request) at or after the finish, the one
that saw the job finished; "result + download + post" is the rest. "Start seen" runs from the start to the first
poll at or after it. Polls are the status and result requests, per minute from submission to the first image.
Targets: median delay <= 0.3 s (also for 1-image jobs), p90 <= 0.8 s, <= 30 polls per job-minute (all jobs);
with --vary 0.3: p99 <= 2 s; start seen within 2 s (median).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    World,
    bench_world,
    finish_time,
    median,
    percentile,
    print_table,
    run,
    start_time,
    wait_until,
)
from tests.fakes.runcomfy import make_png

TARGET_MEDIAN_S = 0.3
TARGET_P90_S = 0.8
TARGET_P99_VARIED_S = 2.0
TARGET_POLLS_PER_MINUTE = 30.0
TARGET_START_SEEN_S = 2.0
SECONDS_PER_IMAGE = 2.0
QUEUE_SECONDS_PER_POSITION = 2.0


def _range(text: str, kind: type) -> tuple:
    low, high = (kind(v) for v in text.split(","))
    return low, high


async def _submit_all(world: World, args: argparse.Namespace, rng: random.Random) -> dict[str, int]:
    """Dispatch the jobs one every --gap seconds; return the number of images of each, by tag."""
    images_by_tag: dict[str, int] = {}
    started = time.monotonic()
    for n in range(args.jobs):
        tag = f"D{n:04d}"
        images = rng.randint(*args.images)
        queue = rng.uniform(*args.queue)
        per_image = SECONDS_PER_IMAGE * (1 + rng.uniform(-args.vary, args.vary))
        world.runcomfy.next_job(
            queue_seconds=queue,
            run_seconds=per_image * images,
            queue_position=max(1, round(queue / QUEUE_SECONDS_PER_POSITION)),
            image_bytes=args.image_kb * 1024,
        )
        await world.imagine(f"a lighthouse in a storm, ref {tag}", images=images, user=n)
        images_by_tag[tag] = images
        # One submission at a time, so each fake job gets the plan queued for it.
        await wait_until(lambda t=tag: world.fake_job_for(t), 30, what=f"job {tag} to be submitted")
        pause = started + (n + 1) * args.gap - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
    return images_by_tag


def _measure(world: World, images_by_tag: dict[str, int]) -> dict[str, list[float]]:
    calls = world.poll_calls()
    keys = ("delay", "detect", "post", "all", "rate", "calls", "life", "start", "delay1")
    found: dict[str, list[float]] = {k: [] for k in keys}
    for tag in images_by_tag:
        fake_job = world.fake_job_for(tag)
        interaction = world.interactions[f"a lighthouse in a storm, ref {tag}"]
        posts = world.discord.posts_by_token.get(interaction.token, [])
        completed = finish_time(fake_job)
        first = min(post.arrived for post in posts)
        polls = calls.get(fake_job.request_id, [])
        detected = min((t for t in polls if t >= completed), default=max(polls))
        started = min((t for t in polls if t >= start_time(fake_job)), default=detected)
        found["start"].append(started - start_time(fake_job))
        if images_by_tag[tag] == 1:
            found["delay1"].append(first - completed)
        life_minutes = (first - fake_job.submitted_at) / 60
        found["delay"].append(first - completed)
        found["detect"].append(detected - completed)
        found["post"].append(first - detected)
        found["all"].append(max(post.arrived for post in posts) - completed)
        found["rate"].append(len(polls) / life_minutes)
        found["calls"].append(float(len(polls)))
        found["life"].append(life_minutes)
    return found


async def _run(args: argparse.Namespace) -> tuple[dict[str, list[float]], list[str], float]:
    rng = random.Random(args.seed)
    # The outputs are made once, before any timing (the fake caches them).
    await asyncio.gather(*(asyncio.to_thread(make_png, args.image_kb * 1024, i) for i in range(1, args.images[1] + 1)))
    async with bench_world() as world:
        cpu_before = world.bot.cpu_seconds()
        images_by_tag = await _submit_all(world, args, rng)
        total = sum(images_by_tag.values())

        def all_posted() -> bool:
            return sum(len(p.indexes) for p in world.discord.image_posts) >= total

        longest = args.queue[1] + SECONDS_PER_IMAGE * args.images[1] + 60
        await wait_until(all_posted, longest, interval=0.1, what="every image to be posted")
        return _measure(world, images_by_tag), await world.bot.log_problems(), world.bot.cpu_seconds() - cpu_before


def _stats(label: str, values: list[float], target: str = "") -> list[object]:
    return [label, median(values), percentile(values, 0.9), max(values), min(values), target]


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two /imagine commands")
    parser.add_argument("--queue", type=lambda t: _range(t, float), default=(5.0, 20.0), help="min,max queue seconds")
    parser.add_argument("--images", type=lambda t: _range(t, int), default=(1, 8), help="min,max images per job")
    parser.add_argument("--image-kb", type=int, default=1024, help="size of each output PNG")
    parser.add_argument("--vary", type=float, default=0.0, help="run time per image varies by ± this share")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{args.jobs} jobs, one every {args.gap:g} s | queue {args.queue[0]:g}-{args.queue[1]:g} s | "
        f"{args.images[0]}-{args.images[1]} images at {SECONDS_PER_IMAGE:g} s each (± {args.vary * 100:g} %), "
        f"{args.image_kb} KiB PNGs | default poll settings"
    )
    found, problems, cpu = run(_run(args))
    delay = found["delay"]
    overall_rate = sum(found["calls"]) / sum(found["life"])
    if args.vary:
        verdict = _verdict(percentile(delay, 0.99) <= TARGET_P99_VARIED_S)
        first_target = f"p99 <= {TARGET_P99_VARIED_S:g} s: {verdict} (p99 {percentile(delay, 0.99):.2f})"
    else:
        met = median(delay) <= TARGET_MEDIAN_S and percentile(delay, 0.9) <= TARGET_P90_S
        first_target = f"p50 <= {TARGET_MEDIAN_S:g}, p90 <= {TARGET_P90_S:g} s: {_verdict(met)}"
    one = found["delay1"]
    print_table(
        ["seconds after the job finished", "p50", "p90", "max", "min", "target"],
        [
            _stats("first image message", delay, first_target),
            _stats("  detection (the poll)", found["detect"]),
            _stats("  result + download + post", found["post"]),
            _stats("last image message", found["all"]),
            _stats(f"first image, 1-image jobs ({len(one)})", one or [float("nan")],
                   f"p50 <= {TARGET_MEDIAN_S:g} s: {_verdict(bool(one) and median(one) <= TARGET_MEDIAN_S)}"),
            _stats("start seen (after in_progress)", found["start"],
                   f"p50 <= {TARGET_START_SEEN_S:g} s: {_verdict(median(found['start']) <= TARGET_START_SEEN_S)}"),
        ],
    )  # fmt: skip
    print()
    print_table(
        ["polls (status + result)", "p50", "p90", "max", "min", "all jobs", "target"],
        [
            [*_stats("per job-minute", found["rate"])[:5], f"{overall_rate:.2f}",
             f"all <= {TARGET_POLLS_PER_MINUTE:g}: {_verdict(overall_rate <= TARGET_POLLS_PER_MINUTE)}"],
            [*_stats("per job", found["calls"])[:5], f"{sum(found['calls']):.0f}", ""],
        ],
    )  # fmt: skip
    print(f"job life (submit -> first image) p50 {median(found['life']) * 60:.1f} s | bot CPU {cpu:.1f} s in all")
    if problems:
        print(f"{len(problems)} error line(s) in the bot's log, first: {problems[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
