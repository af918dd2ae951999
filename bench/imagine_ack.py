"""Benchmark: how fast `/imagine` is acknowledged, with 0 and with 500 jobs in flight.

    python bench/imagine_ack.py [--samples 200] [--in-flight 0,500] [--fill-rate 50] [--burst 50]

Latency: from dispatching INTERACTION_CREATE on the fake gateway to the interaction callback (the deferral)
reaching the fake Discord. The bot runs in its own process with the default poll and edit settings and a generous
quota. For N jobs in flight, N `/imagine` commands (one per member, at --fill-rate per second) are submitted to a
fake RunComfy that keeps them queued (positions 1..N) and the bot polls them; once every job has been polled and
the status edits have settled, probe commands are sent one at a time. Each probe job finishes at once and is
delivered before the next probe, so the number in flight stays N. Target: p99 < 100 ms.

Also shown, for information: the acknowledgements of the fill itself, and of --burst commands sent at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import World, bench_world, dispatch_paced, median, percentile, print_table, run, wait_until
from tests.fakes.runcomfy import JobPlan

TARGET_P99_MS = 100.0
SETTLE_SECONDS = 12.0  # longer than the default longest poll interval (10 s): every queued job was polled again
PROBE_USER = 10_000_000  # probes and bursts come from members distinct from the fill's
BURST_USER = 20_000_000


async def _fill(world: World, count: int, rate: float) -> list[float]:
    """Submit `count` jobs that stay queued at RunComfy; return their acknowledgement latencies (ms)."""
    for position in range(1, count + 1):
        world.runcomfy.next_job(manual=True, queue_position=position)
    prompts = [(f"a quiet harbour at dawn, ref F{n:04d}", 1) for n in range(count)]
    interactions = await dispatch_paced(world, prompts, per_second=rate)
    await wait_until(lambda: len(world.runcomfy.jobs) >= count, 60 + count / 10, what=f"{count} submissions")
    return [(world.ack_seconds(i) or float("inf")) * 1000 for i in interactions]


async def _probe(world: World, samples: int) -> tuple[list[float], int]:
    """Send probes one at a time; return their latencies (ms) and how many got no callback."""
    latencies, unanswered = [], 0
    for n in range(samples):
        interaction = await world.imagine(f"a lighthouse in a storm, ref P{n:04d}", images=1, user=PROBE_USER + n)
        await wait_until(lambda i=interaction: i.token in world.discord.posts_by_token, 30, what="a probe's image")
        ack = world.ack_seconds(interaction)
        if ack is None:
            unanswered += 1
        else:
            latencies.append(ack * 1000)
        await asyncio.sleep(random.uniform(0.0, 0.05))  # never in step with the pollers
    return latencies, unanswered


async def _burst(world: World, size: int) -> tuple[list[float], int]:
    """Dispatch `size` commands at once (after the probes); return their latencies (ms) and how many got no ack."""
    prompts = [f"a lighthouse at night, ref B{n:04d}" for n in range(size)]
    interactions = [await world.imagine(p, images=1, user=BURST_USER + n) for n, p in enumerate(prompts)]

    def answered() -> bool:
        return all(i.token in world.discord.callback_times for i in interactions)

    with contextlib.suppress(TimeoutError):
        await wait_until(answered, 10, what="the burst's acknowledgements")
    acks = [world.ack_seconds(i) for i in interactions]
    return [a * 1000 for a in acks if a is not None], sum(a is None for a in acks)


def _polls(world) -> int:
    """Status and result requests so far (the bot reads a running job with result)."""
    return world.runcomfy.counts["status"] + world.runcomfy.counts["result"]


async def _scenario(in_flight: int, samples: int, fill_rate: float, burst: int) -> dict[str, object]:
    async with bench_world(plan=JobPlan()) as world:
        fill_acks = await _fill(world, in_flight, fill_rate) if in_flight else []
        if in_flight:
            await asyncio.sleep(SETTLE_SECONDS)
        polls_before, cpu_before, started = _polls(world), world.bot.cpu_seconds(), time.monotonic()
        latencies, unanswered = await _probe(world, samples)
        elapsed = time.monotonic() - started
        cpu_after = world.bot.cpu_seconds()
        queued = sum(1 for rid in world.runcomfy.jobs if world.runcomfy.state_of(rid) == "in_queue")
        burst_acks = await _burst(world, burst) if burst else ([], 0)
        problems = await world.bot.log_problems()
        return {
            "in_flight": queued,
            "latencies": latencies,
            "unanswered": unanswered,
            "fill_acks": fill_acks,
            "polls_per_s": (_polls(world) - polls_before) / elapsed,
            "cpu_pct": (cpu_after - cpu_before) / elapsed * 100,
            "burst_acks": burst_acks,
            "problems": problems,
        }


def _row(
    label: str, in_flight: int, values: list[float], unanswered: int, extra: dict[str, object], *, judged: bool
) -> list[object]:
    p99 = percentile(values, 0.99)
    verdict = ("ok" if unanswered == 0 and p99 < TARGET_P99_MS else "MISSED") if judged else "(info)"
    return [
        label, in_flight, len(values), unanswered, median(values), percentile(values, 0.9), p99,
        max(values, default=float("nan")), extra.get("polls_per_s", "-"), extra.get("cpu_pct", "-"), verdict,
    ]  # fmt: skip


async def _main(in_flight_counts: list[int], samples: int, fill_rate: float, burst: int) -> bool:
    rows, ok, problems = [], True, []
    for count in in_flight_counts:
        r = await _scenario(count, samples, fill_rate, burst)
        row = _row(f"probes, {count} in flight", r["in_flight"], r["latencies"], r["unanswered"], r, judged=True)
        ok &= row[-1] == "ok"
        rows.append(row)
        if r["fill_acks"]:
            acks = [a for a in r["fill_acks"] if a != float("inf")]
            missing = len(r["fill_acks"]) - len(acks)
            rows.append(_row(f"fill at {fill_rate:g}/s (0->{count})", count, acks, missing, {}, judged=False))
        if burst:
            rows.append(_row(f"burst of {burst}, {count} in flight", count, *r["burst_acks"], {}, judged=False))
        problems += r["problems"]
    print_table(
        ["scenario", "in flight", "n", "no ack", "p50 ms", "p90 ms", "p99 ms", "max ms", "polls/s", "bot CPU %", ""],
        rows,
    )
    if problems:
        print(f"{len(problems)} error line(s) in the bot's log, first: {problems[0]}")
    return ok and not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="probe commands per scenario")
    parser.add_argument("--in-flight", default="0,500", help="comma-separated numbers of jobs in flight")
    parser.add_argument("--fill-rate", type=float, default=50.0, help="commands per second while filling")
    parser.add_argument("--burst", type=int, default=50, help="commands sent at once after the probes (0: none)")
    args = parser.parse_args()
    print(f"target: p99 < {TARGET_P99_MS:g} ms | default poll/edit settings | bot in its own process")
    counts = [int(n) for n in args.in_flight.split(",")]
    met = run(_main(counts, args.samples, args.fill_rate, args.burst))
    print("target met" if met else "TARGET MISSED (or errors in the bot's log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
