"""Texts of the quota commands: limits, overrides, usage and changes, as members and admins read them.

They are catalog texts (`bot.discord.i18n`), said in the reader's language with `say`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.discord.i18n import SOURCE_LANGUAGE, Text, Usd, Value, t, tn, translate_to
from bot.discord.quota_messages import current_period, discord_time
from bot.domain import periods
from bot.domain.quota_policy import (
    SOURCE_DEFAULT,
    SOURCE_UNLIMITED_USER,
    SOURCE_USER,
    GuildQuota,
    Limit,
    Override,
    Usage,
)

MESSAGE_LIMIT = 2000
MAX_LISTED_OVERRIDES = 20
_ROLE_SOURCE = re.compile(r"(?:unlimited \()?role (\d+)\)?")

UNLIMITED = t("unlimited")
NONE = t("none")


def images(count: int | None) -> Text:
    if count is None:
        return UNLIMITED
    return tn("{count} image", "{count} images", count)


def per_period(count: int | None, period: str) -> Text:
    """ "30 images per day", "unlimited", or "0 images (blocked)"."""
    if count is None:
        return UNLIMITED
    if count == 0:
        return t("0 images (blocked)")
    period = periods.check_period(period)
    if period == "day":
        return tn("{count} image per day", "{count} images per day", count)
    if period == "week":
        return tn("{count} image per week", "{count} images per week", count)
    return tn("{count} image per month", "{count} images per month", count)


def _per(period: str, caps: Value) -> Text:
    period = periods.check_period(period)
    if period == "day":
        return t("{caps} per day", caps=caps)
    if period == "week":
        return t("{caps} per week", caps=caps)
    return t("{caps} per month", caps=caps)


def source(text: str) -> Text | str:
    """Where a limit comes from, with role ids turned into role mentions."""
    if text in (SOURCE_USER, SOURCE_UNLIMITED_USER, "user"):
        return t("user override")
    role = _ROLE_SOURCE.fullmatch(text)
    if role is not None:
        return t("role {role}", role=f"<@&{role[1]}>")
    if text == SOURCE_DEFAULT:
        return t("server default")
    return text


def limit(value: Limit) -> Text:
    return t("{limit} ({source})", limit=per_period(value.images, value.period), source=source(value.source))


def override(value: Override | None, period: str) -> Text:
    return NONE if value is None else per_period(value.images, period)


def budget(guild: GuildQuota) -> Text:
    if guild.budget_images is not None and guild.budget_usd_micros is not None:
        caps: Value = t(
            "{images} and {dollars}", images=images(guild.budget_images), dollars=Usd(guild.budget_usd_micros)
        )
    elif guild.budget_images is not None:
        caps = images(guild.budget_images)
    elif guild.budget_usd_micros is not None:
        caps = Usd(guild.budget_usd_micros)
    else:
        return NONE
    return _per(guild.budget_period or guild.period, caps)


def defaults(guild: GuildQuota) -> Text:
    return tn(
        "{limit}, at most {count} set in progress per member",
        "{limit}, at most {count} sets in progress per member",
        guild.max_concurrent,
        limit=per_period(guild.images, guild.period),
    )


def change(what: Value, before: Value, after: Value) -> Text:
    if before == after:
        return t("{what}: {after} (unchanged)", what=what, after=after)
    return t("{what}: {before} → {after}", what=what, before=before, after=after)


def fit(lines: Sequence[str], limit_chars: int = MESSAGE_LIMIT, language: str = SOURCE_LANGUAGE) -> str:
    """Join lines, dropping the last ones (with a note) if the message would be too long."""
    text = "\n".join(lines)
    if len(text) <= limit_chars:
        return text
    kept: list[str] = []
    for line in lines:
        if len("\n".join([*kept, line])) > limit_chars - 60:
            break
        kept.append(line)
    left = len(lines) - len(kept)
    return "\n".join([*kept, tn("… and {count} more line", "… and {count} more lines", left).in_language(language)])


def say(lines: Sequence[str], language: str) -> str:
    """Lines of catalog texts in `language`, fitted into one message."""
    return fit([translate_to(line, language) for line in lines], language=language)


def usage_lines(usage: Usage, *, max_concurrent: int | None = None) -> list[Text]:
    """Used, reserved, limit, remaining, reset time and unfinished jobs of one member."""
    lines = [
        t("Limit: {limit} ({source})", limit=per_period(usage.limit, usage.period), source=source(usage.source)),
        t("Used {when}: {images}", when=current_period(usage.period), images=images(usage.used)),
        t("Reserved by sets in progress: {images}", images=images(usage.reserved)),
        t("Left: {images}", images=images(usage.remaining)),
        t("Resets {time} ({date})", time=discord_time(usage.resets_at), date=f"<t:{int(usage.resets_at)}:f>"),
    ]
    if max_concurrent is not None:
        lines.append(
            tn(
                "Sets in progress: {jobs} (at most {count} at a time)",
                "Sets in progress: {jobs} (at most {count} at a time)",
                max_concurrent,
                jobs=usage.unfinished_jobs,
            )
        )
    else:
        lines.append(t("Sets in progress: {jobs}", jobs=usage.unfinished_jobs))
    return lines


def server_report(
    guild: GuildQuota,
    overrides: Sequence[Override],
    top_users: Sequence[tuple[int, int]],
    *,
    budget_used: int,
    blocked_prompts: int,
    role_exists: Callable[[int], bool],
    unknown_outcomes: Sequence[tuple[int, float]] = (),
    spend_lines: Sequence[Text] = (),
    language: Value = "",
) -> list[Text]:
    """`/quota show` without a user: settings, budget, every override and the top users this period."""
    when = current_period(guild.period)
    lines = [t("**Image quotas on this server**")]
    if guild.is_default:
        lines.append(t("Default: {defaults} (the bot's defaults)", defaults=defaults(guild)))
    else:
        lines.append(t("Default: {defaults}", defaults=defaults(guild)))
    if guild.budget_images is None and guild.budget_usd_micros is None:
        lines.append(t("Server budget: none"))
    else:
        lines.append(
            t(
                "Server budget: {budget}; {images} used or reserved {when}",
                budget=budget(guild),
                images=images(budget_used),
                when=current_period(guild.budget_period or guild.period),
            )
        )
    lines.extend(spend_lines)
    lines.append(t("Prompts refused by the filter {when}: {count}", when=when, count=blocked_prompts))
    if language:
        lines.append(t("Language of public messages: {language}", language=language))
    lines.append(t("**Overrides**") if overrides else t("**Overrides**: none"))
    for item in overrides[:MAX_LISTED_OVERRIDES]:
        limit_text = per_period(item.images, guild.period)
        if item.kind == "user":
            lines.append(t("• {target}: {limit}", target=f"<@{item.target_id}>", limit=limit_text))
        elif role_exists(item.target_id):
            lines.append(t("• {target}: {limit}", target=f"<@&{item.target_id}>", limit=limit_text))
        else:
            lines.append(t("• {target} (deleted role): {limit}", target=f"<@&{item.target_id}>", limit=limit_text))
    if len(overrides) > MAX_LISTED_OVERRIDES:
        left = len(overrides) - MAX_LISTED_OVERRIDES
        lines.append(tn("… and {count} more", "… and {count} more", left))
    lines.append(
        t("**Top users {when}**", when=when) if top_users else t("**Top users {when}**: nobody yet", when=when)
    )
    lines.extend(
        t("{rank}. {member}: {images}", rank=rank, member=f"<@{user_id}>", images=images(count))
        for rank, (user_id, count) in enumerate(top_users, 1)
    )
    lines.extend(unknown_outcome_lines(unknown_outcomes))
    return lines


def unknown_outcome_lines(jobs: Sequence[tuple[int, float]]) -> list[Text]:
    """(user id, submit time) of jobs RunComfy may have made and billed without the bot learning their id."""
    if not jobs:
        return []
    lines = [
        t(
            "**Sets with an unknown outcome** (RunComfy may have made and billed them; the images were given back; "
            "compare with RunComfy's Generations page)"
        )
    ]
    lines.extend(
        t("• {member}, sent {time}", member=f"<@{user_id}>", time=f"<t:{int(sent)}:f>") for user_id, sent in jobs
    )
    return lines


def member_report(mention: str, usage: Usage, *, max_concurrent: int, blocked_prompts: int) -> list[Text]:
    """`/quota show user:`: their limit and its source, usage, reservations, jobs, reset time."""
    when = current_period(usage.period)
    return [
        t("**Image quota of {member}**", member=mention),
        *usage_lines(usage, max_concurrent=max_concurrent),
        t("Prompts refused by the filter {when}: {count}", when=when, count=blocked_prompts),
    ]
