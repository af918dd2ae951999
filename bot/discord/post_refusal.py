"""Discord answers that trying again cannot fix, and what to say about them.

An unknown channel, message or webhook, or missing access or permissions, stays so until a person changes
something: posting stops at once (no retries), the job is charged for what was posted, the requester is told
privately, and the log names the object or the permissions that are missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import discord

from bot.discord.i18n import SOURCE_LANGUAGE, join, t, translate
from bot.logging_setup import for_job

log = logging.getLogger(__name__)

# What the bot needs to post in a channel on its own, once the interaction token is gone.
CHANNEL_PERMISSIONS = ("view_channel", "send_messages", "embed_links", "attach_files", "read_message_history")
UNKNOWN_CHANNEL = 10003
PERMANENT_CODES = {
    UNKNOWN_CHANNEL: "Unknown Channel",
    10004: "Unknown Guild",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    50001: "Missing Access",
    50013: "Missing Permissions",
}
MISSING_PERMISSION_TEXT = "I'm not allowed to post in that channel (missing permissions)"
CHANNEL_GONE_TEXT = "the channel no longer exists"


def is_permanent(exc: BaseException) -> bool:
    """Whether a Discord error means trying again cannot help."""
    return isinstance(exc, discord.Forbidden) or (
        isinstance(exc, discord.HTTPException) and exc.code in PERMANENT_CODES
    )


# As Discord's permission settings name them, for members.
PERMISSION_NAMES = {
    "view_channel": t("View Channel"),
    "send_messages": t("Send Messages"),
    "embed_links": t("Embed Links"),
    "attach_files": t("Attach Files"),
    "read_message_history": t("Read Message History"),
}


def label(permission: str) -> str:
    return permission.replace("_", " ").title()


@dataclass(frozen=True)
class Refusal:
    channel_gone: bool
    log_line: str  # for admins: which object or permissions are missing
    member_text: str  # for the requester, privately
    short: str  # why posting stopped, in the status and the delivery notes


def describe(bot: Any, job: Any, exc: BaseException | None, language: str = SOURCE_LANGUAGE) -> Refusal:
    """`language`: the one the requester is told in."""
    channel_id = job.reply_channel_id or job.channel_id
    code = getattr(exc, "code", None)
    where = f"channel {channel_id} of guild {job.guild_id}"
    if code == UNKNOWN_CHANNEL or (isinstance(exc, discord.NotFound) and code in (None, 0)):
        return Refusal(
            True,
            f"{where} no longer exists (Discord code {code or 404}, Unknown Channel); the job stops posting there",
            t(
                "The channel {channel} no longer exists, so your Seedream job {job} could not be posted there; "
                "images that could not be posted are not charged.",
                channel=f"<#{channel_id}>",
                job=f"`{job.id}`",
            ).in_language(language),
            CHANNEL_GONE_TEXT,
        )
    missing = _missing_permissions(bot, channel_id) or [label(name) for name in CHANNEL_PERMISSIONS]
    what = PERMANENT_CODES.get(code, "Forbidden") if code else "Forbidden"
    return Refusal(
        False,
        f"missing permission to post in {where}: needs {', '.join(missing)} (Discord code {code or 403}, {what})",
        t(
            "I can't post in {channel} (missing permissions), so your Seedream job {job} can't be shown there; "
            "images that can't be posted are not charged. A server admin needs to let me send messages, embed "
            "links and attach files in that channel.",
            channel=f"<#{channel_id}>",
            job=f"`{job.id}`",
        ).in_language(language),
        MISSING_PERMISSION_TEXT,
    )


def _missing_permissions(bot: Any, channel_id: int) -> list[str]:
    """The channel permissions the bot lacks, as far as its cache knows (empty if it cannot tell)."""
    channel = bot.get_channel(channel_id)
    guild = getattr(channel, "guild", None)
    me = getattr(guild, "me", None)
    if channel is None or me is None:
        return []
    try:
        granted = channel.permissions_for(me)
    except Exception:  # a partial channel or member in the cache: it cannot tell
        return []
    return [label(name) for name in CHANNEL_PERMISSIONS if not getattr(granted, name)]


async def warn_missing_permissions(interaction: discord.Interaction, job: Any) -> None:
    """Tell the member privately, in their language, when the bot could not go on in the channel on its own."""
    granted = interaction.app_permissions
    lacking = [name for name in CHANNEL_PERMISSIONS if not getattr(granted, name)]
    if not lacking:
        return
    missing = [label(name) for name in lacking]
    log.warning(
        "job %s: the bot lacks %s in channel %s of guild %s; it can post there only for the 15 minutes the "
        "interaction lasts",
        job.id,
        ", ".join(missing),
        interaction.channel_id,
        interaction.guild_id,
    )
    text = t(
        "Heads-up: I'm missing {permissions} in this channel, so I can only post here through this reply for "
        "15 minutes. If your images take longer, I'll tell you by DM. A server admin can fix this in the "
        "channel's permissions.",
        permissions=join(*(PERMISSION_NAMES[name] for name in lacking), separator=", "),
    )
    try:
        await interaction.followup.send(translate(text, interaction.locale), ephemeral=True)
    except discord.HTTPException:
        for_job(log, job).warning("could not warn the member about the missing permissions")
