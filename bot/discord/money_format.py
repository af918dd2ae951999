"""Texts about money, for admins only (members keep seeing images): spend, top spenders, alerts."""

from __future__ import annotations

from collections.abc import Sequence

from bot.discord.i18n import Text, Usd, t, tn
from bot.discord.quota_messages import current_period
from bot.domain.quota_policy import GuildQuota
from bot.store.money import Spend, Spender

ALERTS_EXPLAINED = t(
    "The bot posts there when 80 % and 100 % of the server budget are reached, when RunComfy says the bot's "
    "account is out of credit (and when it works again), and when a set's outcome is unknown (it may have been "
    "billed)."
)
NONE = t("none")


def channel(channel_id: int | None) -> str:
    return NONE if channel_id is None else f"<#{channel_id}>"


def spent_and_held(spent: int, held: int) -> Text:
    if held:
        return t("{spent} spent, {held} held by sets in progress", spent=Usd(spent), held=Usd(held))
    return t("{spent} spent", spent=Usd(spent))


def spend_text(spend: Spend) -> Text | Usd:
    """Like "$1.23 ($1.20 billed by RunComfy, $0.03 estimated)"; the estimate is images posted x quoted price."""
    if spend.estimated_micros:
        return t(
            "{total} ({billed} billed by RunComfy, {estimated} estimated)",
            total=Usd(spend.total_micros),
            billed=Usd(spend.actual_micros),
            estimated=Usd(spend.estimated_micros),
        )
    return Usd(spend.total_micros)


def spend_lines(spend: Spend, spenders: Sequence[Spender], *, budget: GuildQuota) -> list[Text]:
    """`/quota show`: the server's spend in its budget period and the members who spent most in its quota period."""
    when = current_period(budget.budget_period or budget.period)
    values = {"when": when, "spend": spend_text(spend)}
    if spend.held_micros:
        line = tn(
            "Spend {when}: {spend} for {count} image; {held} held by sets in progress",
            "Spend {when}: {spend} for {count} images; {held} held by sets in progress",
            spend.images,
            held=Usd(spend.held_micros),
            **values,
        )
    else:
        line = tn(
            "Spend {when}: {spend} for {count} image",
            "Spend {when}: {spend} for {count} images",
            spend.images,
            **values,
        )
    lines = [line]
    if budget.budget_usd_micros is not None:
        used = spend.total_micros + spend.held_micros
        percent = 100 * used // budget.budget_usd_micros if budget.budget_usd_micros else 100
        lines.append(
            t(
                "Dollar budget used {when}: {percent} % of {budget}",
                when=when,
                percent=percent,
                budget=Usd(budget.budget_usd_micros),
            )
        )
    top_when = current_period(budget.period)
    if spenders:
        lines.append(t("**Top spenders {when}**", when=top_when))
    else:
        lines.append(t("**Top spenders {when}**: nobody yet", when=top_when))
    lines.extend(
        tn(
            "{rank}. {member}: {spend}, {count} image",
            "{rank}. {member}: {spend}, {count} images",
            item.spend.images,
            rank=rank,
            member=f"<@{item.user_id}>",
            spend=spend_text(item.spend),
        )
        for rank, item in enumerate(spenders, 1)
    )
    return lines


def budget_alert(percent: int, guild: GuildQuota) -> Text:
    when = current_period(guild.budget_period or guild.period)
    if percent >= 100:
        return t(
            "⚠️ This server's budget {when} is used up: new sets are refused until it resets or is raised.", when=when
        )
    return t("⚠️ This server has used {percent} % of its budget {when}.", percent=percent, when=when)


OUT_OF_CREDIT_ALERT = t(
    "⚠️ RunComfy says the bot's account is out of credit: new sets are refused on every server. Top up the "
    "RunComfy balance; the bot notices within a few minutes and takes sets again by itself."
)
CREDIT_BACK_ALERT = t("✅ RunComfy accepts the bot's account again: sets are taken again.")


def outcome_unknown_alert(user_id: int, sent_at: float) -> Text:
    return t(
        "⚠️ A set by {member} sent {time} has an unknown outcome: RunComfy never confirmed it, so it may have been "
        "made and billed. The member got the images back. Compare with RunComfy's Generations page.",
        member=f"<@{user_id}>",
        time=f"<t:{int(sent_at)}:f>",
    )
