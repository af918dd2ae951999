"""One message of a set: its files opened for the upload, and reading the channel back to see whether Discord
already accepted it.

Interaction followups cannot carry a nonce, and a crash can come after Discord accepted a message but
before the bot saved that it did. The message is then found in the channel's history: written by
the bot, after the part was first sent, carrying the part's first image (its file name holds the
job id and the image's index) or, for a linked image, its link.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

import discord

from bot.discord.embeds import jump_url
from bot.engine.set_images import PreparedImage, image_name

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


@contextlib.asynccontextmanager
async def upload_files(images: Sequence[PreparedImage]) -> AsyncIterator[dict[str, Any]]:
    """`files=` for a send (nothing when there are none), opened off the event loop and closed after."""
    handles = await asyncio.gather(*(_open(image) for image in images))
    files = [discord.File(handle, filename=image.filename) for handle, image in zip(handles, images, strict=True)]
    try:
        yield {"files": files} if files else {}
    finally:
        for file in files:
            file.close()  # gives the handle its own close() back; discord.File leaves open what it did not open
            file.fp.close()


async def _open(image: PreparedImage) -> io.BufferedIOBase:
    if image.data is not None:
        return io.BytesIO(image.data)
    assert image.path is not None
    return await asyncio.to_thread(image.path.open, "rb")
