"""Reading a channel back to see whether Discord already accepted one message of a set.

Interaction followups cannot carry a nonce, and a crash can come after Discord accepted a message but
before the bot saved that it did. The message is then found in the channel's history: written by
the bot, after the part was first sent, carrying the part's first image (its file name holds the
job id and the image's index) or, for a linked image, its link.
"""

from __future__ import annotations

import datetime
from typing import Any

import discord

from bot.discord_format import jump_url
from bot.set_images import image_name

HISTORY_LIMIT = 500  # messages read back at most (5 requests); a part is looked for soon after it was sent
CLOCK_SKEW = 120.0  # seconds: look from a little before the part was first sent


async def find_part(channel: Any, me: Any, job: Any, part: Any) -> str | None:
    """The link of the bot's message in `channel` carrying `part` of `job`, or None."""
    since = datetime.datetime.fromtimestamp(max(part.at - CLOCK_SKEW, 1_420_070_400), datetime.UTC)
    after = discord.Object(id=discord.utils.time_snowflake(since))
    stem = image_name(job.id, part.first, "")
    async for message in channel.history(limit=HISTORY_LIMIT, after=after):
        if me is None or message.author.id != me.id:
            continue
        names = (attachment.filename for attachment in message.attachments)
        if any(name.startswith(stem + ".") for name in names) or (part.link_url and part.link_url in message.content):
            return jump_url(job.guild_id, message.channel.id, message.id)
    return None
