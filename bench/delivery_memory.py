"""Benchmark: the bot's peak memory while it delivers a set of 15 images of 8 MB each.

    python bench/delivery_memory.py [--rounds 3] [--images 15] [--image-mb 8] [--premium-tier 3]

Each round starts a fresh bot process (psutil measures it alone; the fakes live in the bench process) in a guild
boosted to --premium-tier (tier 3: 100 MiB per message, so the set goes as 10 + 5 images). A small warm-up job is
delivered first, then a 15-image job waits in the fake RunComfy's queue while the idle RSS is read; the job is then
completed, and the RSS is sampled every 2 ms (and the kernel's high-water mark, VmHWM, read) until every image is
posted. Target: peak < 100 MB above idle.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import MIB, RssSampler, World, bench_world, mib, print_table, run, wait_until
from tests.fakes.runcomfy import JobPlan, make_png

TARGET_ABOVE_IDLE_MB = 100.0  # MB = 10**6 bytes, as the target is stated
IDLE_SAMPLE_SECONDS = 1.0


async def _idle_rss(world: World) -> int:
    with RssSampler(world.bot, interval=0.01) as sampler:
        await asyncio.sleep(IDLE_SAMPLE_SECONDS)
    return int(statistics.median(rss for _t, rss in sampler.samples))


async def _warm_up(world: World) -> None:
    """One small job end to end, so every code path of a delivery has run once before the measurement."""
    interaction = await world.imagine("a small warm-up sketch", images=1, user=1)
    await wait_until(lambda: interaction.token in world.discord.posts_by_token, 30, what="the warm-up image")


async def _round(args: argparse.Namespace) -> dict[str, float]:
    image_bytes = int(args.image_mb * MIB)
    async with bench_world(plan=JobPlan(), premium_tier=args.premium_tier) as world:
        await _warm_up(world)
        # The fake serves cached outputs: make them now, outside the timing.
        await asyncio.gather(*(asyncio.to_thread(make_png, image_bytes, i) for i in range(1, args.images + 1)))
        world.runcomfy.next_job(manual=True, image_bytes=image_bytes)
        interaction = await world.imagine("a lighthouse in a storm, big set", images=args.images, user=2)
        job = await wait_until(lambda: world.fake_job_for("big set"), 30, what="the big job's submission")
        await wait_until(lambda: world.poll_calls().get(job.request_id), 30, what="the big job's first poll")
        await asyncio.sleep(3.0)  # the status edits of a queued job are done
        idle = await _idle_rss(world)
        hwm_reset = world.bot.reset_peak_rss()
        with RssSampler(world.bot, interval=0.002) as sampler:
            completed = time.monotonic()
            world.runcomfy.complete(job.request_id)

            def all_posted() -> bool:
                posts = world.discord.posts_by_token.get(interaction.token, [])
                return sum(len(p.indexes) for p in posts) >= args.images

            await wait_until(all_posted, 120, what="every image of the big set")
            posts = world.discord.posts_by_token[interaction.token]
            await asyncio.sleep(1.0)  # the download folder is removed after posting
        hwm = world.bot.peak_rss() if hwm_reset else None
        peak = max(sampler.peak, hwm or 0)
        return {
            "idle": mib(idle),
            "peak": mib(peak),
            "above": (peak - idle) / 1e6,
            "hwm_above": (hwm - idle) / 1e6 if hwm else float("nan"),
            "samples": len(sampler.samples),
            "every_ms": sampler.mean_interval_ms(),
            "messages": len(posts),
            "first_s": min(p.arrived for p in posts) - completed,
            "last_s": max(p.arrived for p in posts) - completed,
            "problems": len(await world.bot.log_problems()),
        }


async def _main(args: argparse.Namespace) -> list[dict[str, float]]:
    return [await _round(args) for _ in range(args.rounds)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh bot processes, one big set each")
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--image-mb", type=float, default=8.0, help="MiB per output PNG")
    parser.add_argument("--premium-tier", type=int, default=3, choices=(0, 1, 2, 3))
    args = parser.parse_args()
    print(
        f"{args.images} x {args.image_mb:g} MiB PNGs | guild premium tier {args.premium_tier} | "
        f"target: peak < {TARGET_ABOVE_IDLE_MB:g} MB above idle | RSS of the bot process only"
    )
    results = run(_main(args))
    rows = []
    for n, r in enumerate(results, start=1):
        met = r["above"] < TARGET_ABOVE_IDLE_MB and r["problems"] == 0
        rows.append([
            n, r["idle"], r["peak"], r["above"], r["hwm_above"], r["samples"], r["every_ms"], r["messages"],
            r["first_s"], r["last_s"], r["problems"], "ok" if met else "MISSED",
        ])  # fmt: skip
    print_table(
        ["round", "idle MiB", "peak MiB", "peak-idle MB", "VmHWM-idle MB", "samples", "every ms", "messages",
         "first img s", "last img s", "errors", ""],
        rows,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
