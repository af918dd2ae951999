"""What a member reads when a reservation is refused: the reason, what is left, and when it resets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.discord.i18n import Text, join, t, tn
from bot.domain import periods

if TYPE_CHECKING:
    from bot.domain.quota_policy import Usage


def discord_time(moment: float) -> str:
    """Discord timestamp markup: shown to each reader in their own time zone, like "in 5 hours"."""
    return f"<t:{int(moment)}:R>"


def too_many_jobs(unfinished: int, cap: int) -> Text:
    return tn(
        "You already have {count} image set in progress, and the limit here is {cap} at a time. "
        "Please wait for one to finish, then try again.",
        "You already have {count} image sets in progress, and the limit here is {cap} at a time. "
        "Please wait for one to finish, then try again.",
        unfinished,
        cap=cap,
    )


def current_period(period: str) -> Text:
    """`today`, `this week` or `this month`."""
    return {"day": t("today"), "week": t("this week"), "month": t("this month")}[periods.check_period(period)]


def _used_up(period: str, limit: int) -> Text:
    if periods.check_period(period) == "day":
        return tn(
            "You have used your daily quota of {count} image.",
            "You have used your daily quota of {count} images.",
            limit,
        )
    if period == "week":
        return tn(
            "You have used your weekly quota of {count} image.",
            "You have used your weekly quota of {count} images.",
            limit,
        )
    return tn(
        "You have used your monthly quota of {count} image.",
        "You have used your monthly quota of {count} images.",
        limit,
    )


def over_limit(usage: Usage, wanted: int) -> Text:
    limit = usage.limit or 0
    if limit == 0:
        return t("Your image quota on this server is 0, so you cannot generate images here. Please ask a server admin.")
    reset = t("Your quota resets {time}.", time=discord_time(usage.resets_at))
    if not usage.remaining:
        first = _used_up(usage.period, limit)
    else:
        first = tn(
            "You have {count} image left {when}, and this set needs {wanted}. Please ask for {count} or fewer.",
            "You have {count} images left {when}, and this set needs {wanted}. Please ask for {count} or fewer.",
            usage.remaining,
            when=current_period(usage.period),
            wanted=wanted,
        )
    if not usage.reserved:
        return join(first, reset)
    held = tn(
        "({count} image is held by a set still in progress; if it is not delivered, it comes back.)",
        "({count} images are held by sets still in progress; any they do not deliver come back.)",
        usage.reserved,
    )
    return join(first, held, reset)


def over_budget(budget: int, left: int, wanted: int, period: str | None, resets_at: float) -> Text:
    when = current_period(period or "day")
    reset = t("It resets {time}.", time=discord_time(resets_at))
    if left == 0:
        spent = tn(
            "This server's image budget for {when} ({count} image) is spent.",
            "This server's image budget for {when} ({count} images) is spent.",
            budget,
            when=when,
        )
        return join(spent, reset)
    short = tn(
        "This server's image budget has only {count} image left {when}, and this set needs {wanted}. "
        "Please ask for {count} or fewer.",
        "This server's image budget has only {count} images left {when}, and this set needs {wanted}. "
        "Please ask for {count} or fewer.",
        left,
        when=when,
        wanted=wanted,
    )
    return join(short, reset)


# Refused up front on every server while RunComfy says the bot's account has no credit.
OUT_OF_CREDIT = t("The bot's RunComfy account is out of credit; the server's admins have been told.")
