"""Backoff policy for calls that are safe to repeat.

Delays grow exponentially from `base_delay` up to `max_delay`, with jitter so that many clients failing together do
not retry in step. A server's `Retry-After` (seconds or an HTTP date) is honoured: the wait is at least what it asks.
Two bounds always hold: at most `max_attempts` attempts, and no retry is started if its wait would end after
`max_total` seconds from the first attempt (the last error is raised instead of sleeping past the budget).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from bot.runcomfy.backoff import doubling

T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass
class RetryPolicy:
    """How often and how long to retry; `sleep`, `clock` and `random` are injectable for tests."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total: float = 60.0
    jitter: float = 0.5  # share of each backoff delay that is randomised (0 = none, 1 = "full jitter")
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, failed_attempts: int) -> float:
        """The wait after `failed_attempts` failures (1 for the first), jitter included, ignoring Retry-After."""
        raw = doubling(self.base_delay, self.max_delay, failed_attempts - 1)
        jitter = min(1.0, max(0.0, self.jitter))
        return raw * (1.0 - jitter * self.random())

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt: the backoff, or longer if the server asked for longer."""
        wait = self.backoff(failed_attempts)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        is_retryable: Callable[[Exception], bool],
        retry_after: Callable[[Exception], float | None] = lambda exc: None,
        on_retry: Callable[[int, float, Exception], None] | None = None,
    ) -> T:
        """Await `operation()` until it succeeds, the error is not retryable, or a bound is reached."""
        started = self.clock()
        attempt = 1
        while True:
            try:
                return await operation()
            except Exception as exc:
                if not is_retryable(exc) or attempt >= self.max_attempts:
                    raise
                wait = self.delay(attempt, retry_after(exc))
                if self.clock() - started + wait > self.max_total:
                    raise
                if on_retry is not None:
                    on_retry(attempt, wait, exc)
            await self.sleep(wait)
            attempt += 1
