"""Texts about money, for admins only (members keep seeing images): spend, top spenders, alerts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.domain.money import format_usd
from bot.domain.quota_policy import GuildQuota
from bot.store.money import Spend, Spender

ALERTS_EXPLAINED = (
    "The bot posts there when 80 % and 100 % of the server budget are reached, when RunComfy says the bot's "
    "account is out of credit (and when it works again), and when a set's outcome is unknown (it may have been "
    "billed)."
)


def channel(channel_id: int | None) -> str:
    return "none" if channel_id is None else f"<#{channel_id}>"


def spent_and_held(spent: int, held: int) -> str:
    text = f"{format_usd(spent)} spent"
    return text + (f", {format_usd(held)} held by sets in progress" if held else "")


def spend_text(spend: Spend) -> str:
    """Like "$1.23 ($1.20 billed by RunComfy, $0.03 estimated)"; the estimate is images posted x quoted price."""
    text = format_usd(spend.total_micros)
    if spend.estimated_micros:
        billed, estimated = format_usd(spend.actual_micros), format_usd(spend.estimated_micros)
        text += f" ({billed} billed by RunComfy, {estimated} estimated)"
    return text


def spend_lines(
    spend: Spend, spenders: Sequence[Spender], *, budget: GuildQuota, period_text: Callable[[str], str]
) -> list[str]:
    """`/quota show`: the server's spend in its budget period and the members who spent most in its quota period."""
    when = period_text(budget.budget_period or budget.period)
    line = f"Spend {when}: {spend_text(spend)} for {spend.images} images"
    if spend.held_micros:
        line += f"; {format_usd(spend.held_micros)} held by sets in progress"
    lines = [line]
    if budget.budget_usd_micros is not None:
        used = spend.total_micros + spend.held_micros
        percent = 100 * used // budget.budget_usd_micros if budget.budget_usd_micros else 100
        lines.append(f"Dollar budget used {when}: {percent} % of {format_usd(budget.budget_usd_micros)}")
    top_when = period_text(budget.period)
    lines.append(f"**Top spenders {top_when}**" if spenders else f"**Top spenders {top_when}**: nobody yet")
    lines.extend(
        f"{rank}. <@{item.user_id}>: {spend_text(item.spend)}, {item.spend.images} images"
        for rank, item in enumerate(spenders, 1)
    )
    return lines


def budget_alert(percent: int, guild: GuildQuota, period_text: Callable[[str], str]) -> str:
    when = period_text(guild.budget_period or guild.period)
    if percent >= 100:
        return f"⚠️ This server's budget {when} is used up: new sets are refused until it resets or is raised."
    return f"⚠️ This server has used {percent} % of its budget {when}."


OUT_OF_CREDIT_ALERT = (
    "⚠️ RunComfy says the bot's account is out of credit: new sets are refused on every server. Top up the "
    "RunComfy balance; the bot notices within a few minutes and takes sets again by itself."
)
CREDIT_BACK_ALERT = "✅ RunComfy accepts the bot's account again: sets are taken again."


def outcome_unknown_alert(user_id: int, sent_at: float) -> str:
    return (
        f"⚠️ A set by <@{user_id}> sent <t:{int(sent_at)}:f> has an unknown outcome: RunComfy never confirmed it, "
        "so it may have been made and billed. The member got the images back. Compare with RunComfy's Generations "
        "page."
    )
