"""Checks of /quota's options: input an admin must correct raises `Refusal`, whose message says how."""

from __future__ import annotations

import discord

from bot.discord.bot import Interaction
from bot.domain import periods
from bot.domain.money import MAX_BUDGET_MICROS, parse_usd
from bot.domain.quota_policy import Override


class Refusal(Exception):
    """Input the admin must correct; the message says how."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text  # a catalog text keeps its translations


def checked_count(name: str, value: object, *, minimum: int, maximum: int) -> int:
    """Discord's client enforces the option's range, but a hand-made payload can send anything."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(f"`{name}` must be a whole number.")
    if value < minimum:
        if minimum == 0:
            raise Refusal(f"`{name}` can't be negative (you gave {value}). Use 0 to block image generation.")
        raise Refusal(f"`{name}` must be at least {minimum} (you gave {value}).")
    if value > maximum:
        raise Refusal(f"`{name}` can be at most {maximum:,} (you gave {value:,}).")
    return value


def checked_dollars(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_usd(value, name="`dollars`", maximum=MAX_BUDGET_MICROS)
    except ValueError as exc:
        raise Refusal(str(exc)) from None


def checked_period(value: str | None) -> str | None:
    if value is not None and value not in periods.PERIODS:
        raise Refusal(f"The period must be one of {', '.join(periods.PERIODS)}.")
    return value


GONE = "That member is no longer on this server (Discord sent only their id), so there is nothing to change."


def checked_member(interaction: Interaction, user: discord.abc.User | discord.Object) -> discord.Member:
    if not isinstance(user, discord.abc.User):
        raise Refusal(GONE)
    if user.bot:
        raise Refusal(f"{user.mention} is a bot: quotas are for the members who use `/imagine`.")
    if not isinstance(user, discord.Member) or user.guild.id != interaction.guild_id:
        raise Refusal(f"{user.mention} is not a member of this server.")
    return user


def checked_role(interaction: Interaction, role: discord.Role) -> discord.Role:
    guild = interaction.guild
    if guild is not None and guild.get_role(role.id) is None:
        raise Refusal("That role no longer exists on this server.")
    if role.is_default():
        raise Refusal("Every member has @everyone: use `/quota default` to change the server's default limit.")
    return role


def checked_target(interaction: Interaction, target: object) -> discord.Member | discord.Role:
    if isinstance(target, discord.Role):
        return checked_role(interaction, target)
    if isinstance(target, discord.abc.User):
        return checked_member(interaction, target)
    if isinstance(target, discord.Object):
        raise Refusal(GONE.replace("That member", "That member or role").replace("their id", "its id"))
    raise Refusal("Choose a member or a role of this server.")


def role_ids(member: discord.Member) -> list[int]:
    return [role.id for role in member.roles]


def override_of(overrides: list[Override], kind: str, target_id: int) -> Override | None:
    return next((o for o in overrides if o.kind == kind and o.target_id == target_id), None)
