"""Texts of the quota commands: limits, overrides, usage and changes, as members and admins read them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.discord.i18n import t
from bot.discord.quota_messages import discord_time
from bot.domain import periods
from bot.domain.money import format_usd
from bot.domain.quota_policy import SOURCE_USER, GuildQuota, Limit, Override, Usage

MESSAGE_LIMIT = 2000
MAX_LISTED_OVERRIDES = 20
_ROLE_SOURCE = re.compile(r"role (\d+)")


def images(count: int | None) -> str:
    if count is None:
        return "unlimited"
    return f"{count} image" if count == 1 else f"{count} images"


def per_period(count: int | None, period: str) -> str:
    """ "30 images per day", "unlimited", or "0 images (blocked)"."""
    if count is None:
        return "unlimited"
    if count == 0:
        return "0 images (blocked)"
    return f"{images(count)} per {period}"


def source(text: str) -> str:
    """Where a limit comes from, with role ids turned into role mentions ("unlimited" is said by the limit)."""
    if text.startswith("unlimited (") and text.endswith(")"):
        text = text[len("unlimited (") : -1]
    if text == "user":
        text = SOURCE_USER
    return _ROLE_SOURCE.sub(lambda found: f"role <@&{found[1]}>", text)


def limit(value: Limit) -> str:
    return f"{per_period(value.images, value.period)} ({source(value.source)})"


def override(value: Override | None, period: str) -> str:
    return "none" if value is None else per_period(value.images, period)


def budget(guild: GuildQuota) -> str:
    caps = []
    if guild.budget_images is not None:
        caps.append(images(guild.budget_images))
    if guild.budget_usd_micros is not None:
        caps.append(format_usd(guild.budget_usd_micros))
    if not caps:
        return "none"
    return f"{' and '.join(caps)} per {guild.budget_period or guild.period}"


def defaults(guild: GuildQuota) -> str:
    jobs = "1 set" if guild.max_concurrent == 1 else f"{guild.max_concurrent} sets"
    return f"{per_period(guild.images, guild.period)}, at most {jobs} in progress per member"


def change(what: str, before: str, after: str) -> str:
    if before == after:
        return f"{what}: {after} (unchanged)"
    return f"{what}: {before} → {after}"


def fit(lines: Sequence[str], limit_chars: int = MESSAGE_LIMIT) -> str:
    """Join lines, dropping the last ones (with a note) if the message would be too long."""
    text = "\n".join(lines)
    if len(text) <= limit_chars:
        return text
    kept: list[str] = []
    for line in lines:
        if len("\n".join([*kept, line])) > limit_chars - 40:
            break
        kept.append(line)
    return "\n".join([*kept, f"… and {len(lines) - len(kept)} more lines"])


def usage_lines(usage: Usage, *, max_concurrent: int | None = None) -> list[str]:
    """Used, reserved, limit, remaining, reset time and unfinished jobs of one member."""
    when = periods.current(usage.period)
    lines = [
        f"Limit: {per_period(usage.limit, usage.period)} ({source(usage.source)})",
        f"Used {when}: {images(usage.used)}",
        f"Reserved by sets in progress: {images(usage.reserved)}",
        f"Left: {images(usage.remaining)}",
        f"Resets {discord_time(usage.resets_at)} (<t:{int(usage.resets_at)}:f>)",
    ]
    in_progress = f"Sets in progress: {usage.unfinished_jobs}"
    if max_concurrent is not None:
        in_progress += f" (at most {max_concurrent} at a time)"
    lines.append(in_progress)
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
    spend_lines: Sequence[str] = (),
    language: str = "",
) -> str:
    """`/quota show` without a user: settings, budget, every override and the top users this period."""
    when = periods.current(guild.period)
    lines = [
        "**Image quotas on this server**",
        f"Default: {defaults(guild)}" + (" (the bot's defaults)" if guild.is_default else ""),
    ]
    if guild.budget_images is None and guild.budget_usd_micros is None:
        lines.append("Server budget: none")
    else:
        budget_when = periods.current(guild.budget_period or guild.period)
        lines.append(f"Server budget: {budget(guild)}; {images(budget_used)} used or reserved {budget_when}")
    lines.extend(spend_lines)
    if language:
        lines.append(t("Language of public messages: {language}", language=language))
    lines.append(f"Prompts refused by the filter {when}: {blocked_prompts}")
    lines.append("**Overrides**" if overrides else "**Overrides**: none")
    for item in overrides[:MAX_LISTED_OVERRIDES]:
        if item.kind == "user":
            target = f"<@{item.target_id}>"
        else:
            target = f"<@&{item.target_id}>" + ("" if role_exists(item.target_id) else " (deleted role)")
        lines.append(f"• {target}: {per_period(item.images, guild.period)}")
    if len(overrides) > MAX_LISTED_OVERRIDES:
        lines.append(f"… and {len(overrides) - MAX_LISTED_OVERRIDES} more")
    lines.append(f"**Top users {when}**" if top_users else f"**Top users {when}**: nobody yet")
    lines.extend(f"{rank}. <@{user_id}>: {images(count)}" for rank, (user_id, count) in enumerate(top_users, 1))
    lines.extend(unknown_outcome_lines(unknown_outcomes))
    return fit(lines)


def unknown_outcome_lines(jobs: Sequence[tuple[int, float]]) -> list[str]:
    """(user id, submit time) of jobs RunComfy may have made and billed without the bot learning their id."""
    if not jobs:
        return []
    lines = [
        "**Sets with an unknown outcome** (RunComfy may have made and billed them; the images were given back; "
        "compare with RunComfy's Generations page)"
    ]
    lines.extend(f"• <@{user_id}>, sent <t:{int(sent)}:f>" for user_id, sent in jobs)
    return lines


def member_report(mention: str, usage: Usage, *, max_concurrent: int, blocked_prompts: int) -> str:
    """`/quota show user:`: their limit and its source, usage, reservations, jobs, reset time."""
    when = periods.current(usage.period)
    lines = [f"**Image quota of {mention}**", *usage_lines(usage, max_concurrent=max_concurrent)]
    lines.append(f"Prompts refused by the filter {when}: {blocked_prompts}")
    return fit(lines)
