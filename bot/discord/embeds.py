"""How a job looks on Discord: its status embed, the captions of its image messages, message links."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.discord.i18n import SOURCE_LANGUAGE, Value, t
from bot.discord.status import StatusView
from bot.domain.text import shorten
from bot.store.database import Job

STATUS_FIELD_CHARS = 1024


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def _fit_lines(lines: Sequence[str], limit: int) -> str:
    """Join lines, dropping those that would exceed `limit` characters."""
    text = shorten(lines[0], limit) if lines else ""
    for line in lines[1:]:
        if len(text) + 1 + len(line) <= limit:
            text += "\n" + line
    return text


def status_embed(view: StatusView) -> discord.Embed:
    embed = discord.Embed(title=view.title, description=view.description, colour=view.colour)
    for name, value in view.fields:
        embed.add_field(name=name, value=value, inline=True)
    embed.add_field(
        name=view.status_label, value=_fit_lines((view.state_line, *view.notes), STATUS_FIELD_CHARS), inline=False
    )
    if view.footer:
        embed.set_footer(text=view.footer)
    return embed


def caption(job: Job, first: int, last: int, total: int, language: str = SOURCE_LANGUAGE) -> str:
    """The text of one message of images (public: in the server's language)."""
    prompt = discord.utils.escape_markdown(shorten(str(job.options.get("prompt", "")), 120))
    values: dict[str, Value] = {"member": f"<@{job.user_id}>", "prompt": f"**{prompt}**", "first": first, "last": last}
    if first == last:
        return t("{member} {prompt} — image {first} of {total}", total=total, **values).in_language(language)
    return t("{member} {prompt} — images {first}–{last} of {total}", total=total, **values).in_language(language)
