"""Checks of /quota's options: input an admin must correct raises `Refusal`, whose message says how."""

from __future__ import annotations

import discord

from bot.discord.bot import Interaction
from bot.discord.i18n import Name, Text, Usd, command, option, t
from bot.domain import periods
from bot.domain.money import MAX_BUDGET_MICROS, parse_usd
from bot.domain.quota_policy import Override


class Refusal(Exception):
    """Input the admin must correct; the message says how."""

    def __init__(self, text: Text) -> None:
        super().__init__(text)
        self.text = text


def checked_count(name: str, value: object, *, minimum: int, maximum: int) -> int:
    """Discord's client enforces the option's range, but a hand-made payload can send anything."""
    shown = option(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(t("`{option}` must be a whole number.", option=shown))
    if value < minimum:
        if minimum == 0:
            raise Refusal(
                t(
                    "`{option}` can't be negative (you gave {value}). Use 0 to block image generation.",
                    option=shown,
                    value=value,
                )
            )
        raise Refusal(
            t("`{option}` must be at least {minimum} (you gave {value}).", option=shown, minimum=minimum, value=value)
        )
    if value > maximum:
        raise Refusal(
            t("`{option}` can be at most {maximum} (you gave {value}).", option=shown, maximum=maximum, value=value)
        )
    return value


def checked_dollars(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_usd(value, name="dollars", maximum=MAX_BUDGET_MICROS)
    except ValueError:
        text = t(
            "`{dollars}` must be a dollar amount from 0 to {maximum}, like 7.50 (you gave “{value}”).",
            dollars=option("dollars"),
            maximum=Usd(MAX_BUDGET_MICROS),
            value=value,
        )
        raise Refusal(text) from None


def checked_period(value: str | None) -> str | None:
    if value is not None and value not in periods.PERIODS:
        day, week, month = (Name("choice", period) for period in periods.PERIODS)
        raise Refusal(
            t("`{period}` must be {day}, {week} or {month}.", period=option("period"), day=day, week=week, month=month)
        )
    return value


GONE = t("That member is no longer on this server (Discord sent only their id), so there is nothing to change.")
GONE_EITHER = t(
    "That member or role is no longer on this server (Discord sent only its id), so there is nothing to change."
)


def checked_member(interaction: Interaction, user: discord.abc.User | discord.Object) -> discord.Member:
    if not isinstance(user, discord.abc.User):
        raise Refusal(GONE)
    if user.bot:
        raise Refusal(
            t(
                "{user} is a bot: quotas are for the members who use `/{imagine}`.",
                user=user.mention,
                imagine=command("imagine"),
            )
        )
    if not isinstance(user, discord.Member) or user.guild.id != interaction.guild_id:
        raise Refusal(t("{user} is not a member of this server.", user=user.mention))
    return user


def checked_role(interaction: Interaction, role: discord.Role) -> discord.Role:
    guild = interaction.guild
    if guild is not None and guild.get_role(role.id) is None:
        raise Refusal(t("That role no longer exists on this server."))
    if role.is_default():
        raise Refusal(
            t(
                "Every member has @everyone: use `/{quota} {default}` to change the server's default limit.",
                quota=command("quota"),
                default=command("default"),
            )
        )
    return role


def checked_target(interaction: Interaction, target: object) -> discord.Member | discord.Role:
    if isinstance(target, discord.Role):
        return checked_role(interaction, target)
    if isinstance(target, discord.abc.User):
        return checked_member(interaction, target)
    if isinstance(target, discord.Object):
        raise Refusal(GONE_EITHER)
    raise Refusal(t("Choose a member or a role of this server."))


def role_ids(member: discord.Member) -> list[int]:
    return [role.id for role in member.roles]


def override_of(overrides: list[Override], kind: str, target_id: int) -> Override | None:
    return next((o for o in overrides if o.kind == kind and o.target_id == target_id), None)
