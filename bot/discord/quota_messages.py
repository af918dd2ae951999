"""What a member reads when a reservation is refused: the reason, what is left, and when it resets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain import periods

if TYPE_CHECKING:
    from bot.engine.quotas import Usage


def discord_time(moment: float) -> str:
    """Discord timestamp markup: shown to each reader in their own time zone, like "in 5 hours"."""
    return f"<t:{int(moment)}:R>"


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def too_many_jobs(unfinished: int, cap: int) -> str:
    sets = "1 image set" if unfinished == 1 else f"{unfinished} image sets"
    return (
        f"You already have {sets} in progress, and the limit here is {cap} at a time. "
        "Please wait for one to finish, then try again."
    )


def over_limit(usage: Usage, wanted: int) -> str:
    limit = usage.limit or 0
    reset = f"Your quota resets {discord_time(usage.resets_at)}."
    if limit == 0:
        return "Your image quota on this server is 0, so you cannot generate images here. Please ask a server admin."
    held = ""
    if usage.reserved:
        held = f" ({_images(usage.reserved)} are held by sets still in progress; any they do not deliver come back.)"
    if not usage.remaining:
        return f"You have used your {periods.adjective(usage.period)} quota of {_images(limit)}.{held} {reset}"
    return (
        f"You have {_images(usage.remaining)} left {periods.current(usage.period)}, and this set needs {wanted}. "
        f"Please ask for {usage.remaining} or fewer.{held} {reset}"
    )


def over_budget(budget: int, left: int, wanted: int, period: str | None, resets_at: float) -> str:
    when = periods.current(period or "day")
    reset = f"It resets {discord_time(resets_at)}."
    if left == 0:
        return f"This server's image budget for {when} ({_images(budget)}) is spent. {reset}"
    return (
        f"This server's image budget has only {_images(left)} left {when}, and this set needs {wanted}. "
        f"Please ask for {left} or fewer. {reset}"
    )


# Refused up front on every server while RunComfy says the bot's account has no credit.
OUT_OF_CREDIT = "The bot's RunComfy account is out of credit; the server's admins have been told."
