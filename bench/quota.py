"""Benchmark: quota reservations per second and `reserve` latency, with 1, 10 and 100 concurrent users.

    python bench/quota.py [--reservations 5000] [--users 1,10,100] [--one-cpu]

Each scenario uses a fresh database file; every user is a task reserving one job after another
(a new reservation as soon as the last one returns), all on one `Storage`. The process may use every
CPU (as the bot does), unless --one-cpu pins it to one. Like the bot, it runs on `bot.event_loop`'s loop and freezes
its start-up objects out of garbage collection (`bot.heap`). Target: >= 1,000 reservations/s and p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import event_loop, heap
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.store.database import Storage

TARGET_RATE = 1_000
TARGET_P99_MS = 20.0
GUILD_ID = 1


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _scenario(folder: Path, users: int, reservations: int) -> dict[str, float]:
    storage = await Storage.open(folder / f"bench-{users}.db")
    # Generous limits: every reservation goes through every check and succeeds.
    quotas = Quotas(storage, QuotaDefaults(images=10**9, period="day", max_concurrent=10**9))
    await quotas.set_budget(GUILD_ID, 10**9)
    latencies: list[float] = []
    per_user = max(1, reservations // users)

    async def user(user_id: int, count: int, record: bool) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await quotas.reserve(GUILD_ID, user_id, (10, 20), 4, channel_id=2, options={"prompt": "bench"})
            if record:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(user(1_000 + n, 5, False) for n in range(users)))  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(user(n, per_user, True) for n in range(users)))
    elapsed = time.perf_counter() - started
    await storage.close()
    return {
        "users": users,
        "reservations": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def _pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (unsupported here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


async def _main(users: list[int], reservations: int) -> bool:
    ok = True
    heap.freeze_startup_objects()  # as the bot does once it is ready
    print(f"{'users':>5} {'reserved':>8} {'seconds':>8} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    with tempfile.TemporaryDirectory(prefix="seedream-bench-") as folder:
        for count in users:
            r = await _scenario(Path(folder), count, reservations)
            met = r["rate"] >= TARGET_RATE and r["p99_ms"] < TARGET_P99_MS
            ok &= met
            print(
                f"{r['users']:>5} {r['reservations']:>8} {r['seconds']:>8.2f} {r['rate']:>8.0f} "
                f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f}  {'ok' if met else 'MISSED'}"
            )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=5_000, help="timed reservations per scenario")
    parser.add_argument("--users", default="1,10,100", help="comma-separated concurrent user counts")
    parser.add_argument("--one-cpu", action="store_true", help="pin the process to one CPU")
    args = parser.parse_args()
    where = _pin_to_one_cpu() if args.one_cpu else f"unpinned, {len(os.sched_getaffinity(0))} CPUs"
    print(where, f"| target >= {TARGET_RATE}/s, p99 < {TARGET_P99_MS} ms")
    ok = event_loop.run(_main([int(n) for n in args.users.split(",")], args.reservations))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
