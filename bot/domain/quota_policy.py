"""Quota policy as plain values: the limit in force for a member, and their usage, from what was read.

No database access here: `bot.engine.quotas` reads a `Snapshot` and these functions decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.domain import periods

SECONDS_PER_DAY = 86_400
SOURCE_DEFAULT = "server default"
SOURCE_USER = "user override"
SOURCE_UNLIMITED_USER = "unlimited (user)"


def check_count(name: str, value: Any, *, minimum: int) -> int:
    """`value` if it is a whole number >= `minimum`, else ValueError with a clear message."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number (got {value!r}).")
    if value < minimum:
        raise ValueError(f"{name} must be {minimum} or more (got {value}).")
    return value


def day_number(moment: float) -> int:
    """The UTC day a moment falls on, counted from 1970-01-01 (as the usage counters store it)."""
    return int(moment // SECONDS_PER_DAY)


@dataclass(frozen=True)
class QuotaDefaults:
    images: int
    period: str
    max_concurrent: int

    def __post_init__(self) -> None:
        check_count("images", self.images, minimum=0)
        periods.check_period(self.period)
        check_count("max_concurrent", self.max_concurrent, minimum=1)

    @classmethod
    def from_settings(cls, settings: Any) -> QuotaDefaults:
        return cls(settings.quota_default_images, settings.quota_period, settings.quota_max_concurrent_jobs)


@dataclass(frozen=True)
class Limit:
    images: int | None  # None: unlimited
    source: str
    period: str
    max_concurrent: int


@dataclass(frozen=True)
class Usage:
    used: int  # images charged this period
    reserved: int  # images held by unfinished jobs created this period
    limit: int | None
    remaining: int | None
    period: str
    resets_at: float
    unfinished_jobs: int
    source: str


@dataclass(frozen=True)
class GuildQuota:
    images: int
    period: str
    max_concurrent: int
    budget_images: int | None
    budget_period: str | None  # the budget's period in force (the guild's unless set); None without a budget
    is_default: bool  # nothing set by the guild: the settings' defaults apply
    budget_usd_micros: int | None = None  # a dollar cap per budget period, beside or instead of images


@dataclass(frozen=True)
class Override:
    kind: str  # "user" or "role"
    target_id: int
    images: int | None  # None: unlimited


@dataclass(frozen=True)
class GuildRow:
    """The guild's own settings as stored; None means "not set"."""

    images: int | None = None
    period: str | None = None
    max_concurrent: int | None = None
    budget_images: int | None = None
    budget_period: str | None = None
    budget_usd_micros: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything `reserve` needs to decide, read in one statement."""

    guild: GuildRow | None
    overrides: list[Override] = field(default_factory=list)
    user_days: dict[int, tuple[int, int]] = field(default_factory=dict)  # day -> (charged, reserved)
    guild_days: dict[int, tuple[int, int]] = field(default_factory=dict)
    unfinished_jobs: int = 0
    money_days: dict[int, tuple[int, int]] = field(default_factory=dict)  # day -> (spent, held) micro-dollars


def guild_quota(defaults: QuotaDefaults, row: GuildRow | None) -> GuildQuota:
    row = row or GuildRow()
    period = row.period or defaults.period
    has_budget = row.budget_images is not None or row.budget_usd_micros is not None
    return GuildQuota(
        images=defaults.images if row.images is None else row.images,
        period=period,
        max_concurrent=defaults.max_concurrent if row.max_concurrent is None else row.max_concurrent,
        budget_images=row.budget_images,
        budget_period=None if not has_budget else (row.budget_period or period),
        is_default=row.images is None and row.period is None and row.max_concurrent is None and not has_budget,
        budget_usd_micros=row.budget_usd_micros,
    )


def effective_limit(guild: GuildQuota, overrides: Iterable[Override]) -> Limit:
    """A user override wins; else the most generous role (unlimited beats any number); else the default."""
    user = None
    roles: list[Override] = []
    for override in overrides:
        if override.kind == "user":
            user = override
        else:
            roles.append(override)
    images: int | None = guild.images
    source = SOURCE_DEFAULT
    if user is not None:
        images = user.images
        source = SOURCE_USER if images is not None else SOURCE_UNLIMITED_USER
    elif roles:
        roles.sort(key=lambda role: role.target_id)
        unlimited = [role for role in roles if role.images is None]
        best = unlimited[0] if unlimited else max(roles, key=lambda role: role.images or 0)
        images = best.images
        source = f"role {best.target_id}" if images is not None else f"unlimited (role {best.target_id})"
    return Limit(images, source, guild.period, guild.max_concurrent)


def sum_days(days: dict[int, tuple[int, int]], start: float) -> tuple[int, int]:
    """(charged, reserved) over the days from `start` on."""
    first = day_number(start)
    charged = reserved = 0
    for day, (day_charged, day_reserved) in days.items():
        if day >= first:
            charged += day_charged
            reserved += day_reserved
    return charged, reserved


def usage(limit: Limit, snapshot: Snapshot, now: float) -> Usage:
    start, end = periods.period_bounds(limit.period, now)
    used, reserved = sum_days(snapshot.user_days, start)
    remaining = None if limit.images is None else max(0, limit.images - used - reserved)
    return Usage(used, reserved, limit.images, remaining, limit.period, end, snapshot.unfinished_jobs, limit.source)


def earliest_period_start(now: float) -> float:
    """The earliest start of any current period (week or month): how far back usage may need reading."""
    return min(periods.period_bounds(period, now)[0] for period in periods.PERIODS)


def dollars_left(guild: GuildQuota, money_days: dict[int, tuple[int, int]], now: float) -> int | None:
    """Micro-dollars left in the guild's dollar budget this budget period (spent and held counted); None: no cap."""
    if guild.budget_usd_micros is None:
        return None
    start, _ = periods.period_bounds(guild.budget_period or guild.period, now)
    spent, held = sum_days(money_days, start)
    return max(0, guild.budget_usd_micros - spent - held)
