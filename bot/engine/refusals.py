"""Why a reservation is refused: the refusal types, with their numbers, and the checks that raise them.

`bot.engine.quotas` reads a `Snapshot` in its transaction and calls these checks before inserting the job;
the Discord layer words a `QuotaRefused` for the member.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import periods
from bot.domain.quota_policy import (
    GuildQuota,
    QuotaDefaults,
    Snapshot,
    Usage,
    dollars_left,
    effective_limit,
    guild_quota,
    sum_days,
    usage,
)

__all__ = ["OverBudget", "OverLimit", "QuotaRefused", "Refusal", "TooManyJobs", "check_reservation"]


@dataclass(frozen=True)
class TooManyJobs:
    """The member already has `unfinished` jobs; `cap` may run at a time."""

    unfinished: int
    cap: int


@dataclass(frozen=True)
class OverLimit:
    """The member's quota (`usage`, with its limit and reset time) does not cover `wanted` images."""

    usage: Usage
    wanted: int


@dataclass(frozen=True)
class OverBudget:
    """The server's budget (`budget` images per `period`, `left` of them now) does not cover `wanted` images.

    A dollar budget is given in images too, at the quoted price: members see images, not dollars.
    """

    budget: int
    left: int
    wanted: int
    period: str | None
    resets_at: float


Refusal = TooManyJobs | OverLimit | OverBudget


class QuotaRefused(Exception):
    """A reservation was refused, and why, with the numbers (`refusal`); the Discord layer words it for the member.

    `reason` is "concurrency", "limit" or "budget"; `resets_at` (unix seconds) is when waiting helps.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal)
        self.refusal = refusal

    @property
    def reason(self) -> str:
        return {TooManyJobs: "concurrency", OverLimit: "limit", OverBudget: "budget"}[type(self.refusal)]

    @property
    def resets_at(self) -> float | None:
        if isinstance(self.refusal, OverLimit):
            return self.refusal.usage.resets_at
        if isinstance(self.refusal, OverBudget):
            return self.refusal.resets_at
        return None


def check_reservation(
    defaults: QuotaDefaults, snapshot: Snapshot, images: int, now: float, price: int | None = None
) -> None:
    """Raise `QuotaRefused` if the concurrency cap, the member's limit or the server budget forbids `images`.

    A dollar budget is checked at the quoted `price` per image (micro-dollars); without a price it cannot be.
    """
    guild = guild_quota(defaults, snapshot.guild)
    limit = effective_limit(guild, snapshot.overrides)
    if snapshot.unfinished_jobs >= limit.max_concurrent:
        raise QuotaRefused(TooManyJobs(snapshot.unfinished_jobs, limit.max_concurrent))
    current = usage(limit, snapshot, now)
    if current.remaining is not None and current.remaining < images:
        raise QuotaRefused(OverLimit(current, images))
    if guild.budget_images is not None:
        start, end = periods.period_bounds(guild.budget_period or guild.period, now)
        left = max(0, guild.budget_images - sum(sum_days(snapshot.guild_days, start)))
        if left < images:
            raise QuotaRefused(OverBudget(guild.budget_images, left, images, guild.budget_period, end))
    if guild.budget_usd_micros is not None and price:
        _check_dollars(guild, snapshot, images, price, now)


def _check_dollars(guild: GuildQuota, snapshot: Snapshot, images: int, price: int, now: float) -> None:
    """Members see images, not dollars: the refusal says how many images the money left still buys."""
    left = dollars_left(guild, snapshot.money_days, now)
    if left is None or images * price <= left:
        return
    assert guild.budget_usd_micros is not None
    _, end = periods.period_bounds(guild.budget_period or guild.period, now)
    left_images, budget_images = left // price, guild.budget_usd_micros // price
    raise QuotaRefused(OverBudget(budget_images, left_images, images, guild.budget_period, end))
