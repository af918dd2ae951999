"""Quota periods: calendar periods in UTC.

A day starts at 00:00 UTC, a week on Monday at 00:00 UTC, a month on the 1st at 00:00 UTC. Usage
counts jobs created from the start of the current period; the quota resets at the start of the
next one. UTC keeps the reset the same moment for every member of a server, wherever they live.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

PERIODS = ("day", "week", "month")
_SECONDS_PER_DAY = 86_400



def check_period(period: str) -> str:
    """Return `period` if it is one of `PERIODS`, else raise ValueError."""
    if period not in PERIODS:
        raise ValueError(f"The period must be one of {', '.join(PERIODS)} (got {period!r}).")
    return period


def _start(period: str, moment: datetime) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":
        return midnight - timedelta(days=midnight.weekday())
    return midnight.replace(day=1)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """(start, end) in unix seconds of the `period` containing `now`; `end` is when the quota resets."""
    return _bounds_of_day(check_period(period), int(now // _SECONDS_PER_DAY))


@functools.lru_cache(maxsize=64)
def _bounds_of_day(period: str, day: int) -> tuple[float, float]:
    # Periods start at UTC midnight, so the bounds depend only on the day: computed once per day.
    start = _start(period, datetime.fromtimestamp(day * _SECONDS_PER_DAY, UTC))
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "week":
        end = start + timedelta(weeks=1)
    elif start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp()
