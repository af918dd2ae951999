"""The Discord side of a job: its status message and its image messages.

While the interaction token lives (15 minutes; we stop using it a little before), the status is the
reply to `/imagine`, edited through the interaction webhook. After that, or as soon as Discord says
the token is gone, the bot posts an ordinary message in the channel (replying to the original) and
edits that one instead. Edits are coalesced: only when what people see changed, and at most once
per `edit_interval` seconds per job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import discord

from bot.buttons import job_view
from bot.delivery import DeliveryPlan, PreparedImage
from bot.status_render import StatusView, render_status, shorten
from bot.storage import Job, Storage

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60
TOKEN_MARGIN = 60  # stop using a token a minute before Discord does
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
TOKEN_GONE_CODES = {50027, 10015}  # invalid webhook token, unknown webhook


class TokenGone(Exception):
    pass


@dataclass
class _Slot:
    latest: Job
    shown: StatusView | None = None
    extra: tuple[str, ...] = ()
    last_edit: float = float("-inf")
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def status_embed(view: StatusView, extra: Sequence[str] = ()) -> discord.Embed:
    embed = discord.Embed(title=view.title, description=view.description, colour=view.colour)
    for name, value in view.fields:
        embed.add_field(name=name, value=value, inline=True)
    embed.add_field(name="Status", value="\n".join((view.state_line, *extra)), inline=False)
    return embed


class DiscordPresenter:
    def __init__(self, bot: discord.Client, storage: Storage, *, edit_interval: float = 2.0) -> None:
        self._bot = bot
        self._storage = storage
        self._interval = edit_interval
        self._slots: dict[str, _Slot] = {}
        self._dead_tokens: set[str] = set()

    # ---- status message ------------------------------------------------------------------

    async def job_changed(self, job: Job) -> None:
        slot = self._slots.get(job.id)
        if slot is None:
            slot = self._slots[job.id] = _Slot(job)
        slot.latest = job
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._flush(job.id), name=f"status-{job.id}")

    async def flush(self, job_id: str) -> None:
        """Wait until the pending edits of a job are on Discord (for shutdown and tests)."""
        slot = self._slots.get(job_id)
        if slot is not None and slot.task is not None:
            await asyncio.shield(slot.task)

    async def _flush(self, job_id: str) -> None:
        slot = self._slots[job_id]
        while True:
            wait = slot.last_edit + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            job = slot.latest
            view = render_status(job)
            if (view, slot.extra) != (slot.shown, slot.extra) or slot.shown is None:
                try:
                    await self._show(job, view, slot.extra)
                    slot.shown = view
                except Exception:
                    log.exception("job %s: status message could not be edited", job.id)
                slot.last_edit = time.monotonic()
            if slot.latest is job:
                break
        if slot.latest.state.terminal:
            self._slots.pop(job_id, None)

    async def _show(self, job: Job, view: StatusView, extra: Sequence[str]) -> None:
        embed = status_embed(view, extra)
        components = job_view(job.id, cancellable=view.cancellable)
        if self._token_usable(job):
            try:
                await self._webhook(job).edit_message(job.reply_message_id, embed=embed, view=components)
                return
            except TokenGone:
                self._dead_tokens.add(job.id)
        await self._show_in_channel(job, embed, components)

    def _token_usable(self, job: Job) -> bool:
        if job.id in self._dead_tokens:
            return False
        if not (job.interaction_token and job.application_id and job.reply_message_id and job.token_created_at):
            return False
        return time.time() < job.token_created_at + TOKEN_LIFETIME - TOKEN_MARGIN

    def _webhook(self, job: Job) -> _InteractionWebhook:
        return _InteractionWebhook(discord.Webhook.partial(job.application_id, job.interaction_token, client=self._bot))

    async def _show_in_channel(self, job: Job, embed: discord.Embed, components) -> None:
        channel = await self._channel(job)
        key = f"status_message:{job.id}"
        known = await self._storage.get_meta(key)
        if known:
            try:
                await channel.get_partial_message(int(known)).edit(embed=embed, view=components)
                return
            except discord.NotFound:
                pass
        reference = None
        if job.reply_message_id:
            reference = discord.MessageReference(
                message_id=job.reply_message_id, channel_id=channel.id, fail_if_not_exists=False
            )
        message = await self._send(job, channel, embed=embed, view=components, reference=reference)
        await self._storage.set_meta(key, str(message.id))

    # ---- images ------------------------------------------------------------------------------

    def upload_limit(self, job: Job) -> int:
        guild = self._bot.get_guild(job.guild_id)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def post_images(self, job: Job, batch: Sequence[PreparedImage], part: int, parts: int) -> str | None:
        total = job.images_reserved
        first, last = batch[0].index, batch[-1].index
        numbers = f"image {first}" if first == last else f"images {first}–{last}"
        content = f"<@{job.user_id}> **{shorten(job.options.get('prompt', ''), 120)}** — {numbers} of {total}"
        if parts > 1:
            content += f" (part {part}/{parts})"
        message = await self._post_fitting(job, list(batch), content)
        return jump_url(job.guild_id, message.channel.id, message.id)

    async def _post_fitting(self, job: Job, batch: list[PreparedImage], content: str) -> discord.Message:
        """Post a batch; if Discord finds it too large after all, split it, and link a lone image."""
        try:
            return await self._send_files(job, batch, content)
        except discord.HTTPException as exc:
            if exc.status != 413 and exc.code != 40005:
                raise
        if len(batch) == 1:
            log.warning("job %s: image %d is over the upload limit; linking it", job.id, batch[0].index)
            link = f"{content}\nImage {batch[0].index} was too large to upload here: {batch[0].source_url}"
            return await self._send_text(job, link)
        middle = len(batch) // 2
        first = await self._post_fitting(job, batch[:middle], content)
        await self._post_fitting(job, batch[middle:], content + " (continued)")
        return first

    async def _send_text(self, job: Job, content: str) -> discord.Message:
        allowed = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        if self._token_usable(job):
            try:
                return await self._webhook(job).send(content=content, allowed_mentions=allowed)
            except TokenGone:
                self._dead_tokens.add(job.id)
        return await self._send(job, await self._channel(job), content=content, allowed_mentions=allowed)

    async def _send_files(self, job: Job, batch: Sequence[PreparedImage], content: str) -> discord.Message:
        files = [discord.File(image.path, filename=image.filename) for image in batch]
        allowed = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        try:
            if self._token_usable(job):
                try:
                    return await self._webhook(job).send(content=content, files=files, allowed_mentions=allowed)
                except TokenGone:
                    self._dead_tokens.add(job.id)
                    files = [discord.File(image.path, filename=image.filename) for image in batch]
            channel = await self._channel(job)
            return await self._send(job, channel, content=content, files=files, allowed_mentions=allowed)
        finally:
            for file in files:
                file.close()

    async def delivery_finished(self, job: Job, plan: DeliveryPlan, gallery_url: str | None) -> None:
        extra = []
        if gallery_url:
            extra.append(f"[Jump to the images]({gallery_url})")
        extra.extend(f"[Image {image.index}]({image.source_url})" for image in plan.linked)
        extra.extend(plan.notes())
        slot = self._slots.get(job.id) or self._slots.setdefault(job.id, _Slot(job))
        slot.extra = tuple(extra)
        await self.job_changed(job)

    # ---- plumbing -----------------------------------------------------------------------------

    async def _channel(self, job: Job) -> discord.abc.Messageable:
        channel_id = job.reply_channel_id or job.channel_id
        channel = self._bot.get_channel(channel_id)
        if channel is None:
            channel = await self._bot.fetch_channel(channel_id)
        return channel

    async def _send(self, job: Job, channel, **kwargs) -> discord.Message:
        try:
            return await channel.send(**kwargs)
        except discord.Forbidden:
            await self._report_missing_permission(job, channel)
            raise

    async def _report_missing_permission(self, job: Job, channel) -> None:
        key = f"permission_reported:{job.id}"
        if await self._storage.get_meta(key):
            return
        await self._storage.set_meta(key, "1")
        log.warning(
            "job %s: missing permission to post in channel %s of guild %s (needs Send Messages, Embed Links, "
            "Attach Files, Read Message History)",
            job.id,
            channel.id,
            job.guild_id,
        )
        text = (
            f"I can't post in <#{channel.id}> (missing permissions), so your Seedream job `{job.id}` can't be shown "
            "there. A server admin needs to let me send messages, embed links and attach files in that channel."
        )
        try:
            user = self._bot.get_user(job.user_id) or await self._bot.fetch_user(job.user_id)
            await user.send(text)
        except discord.HTTPException:
            log.warning("job %s: the requester could not be told by DM either", job.id)


class _InteractionWebhook:
    """The interaction webhook, turning Discord's 'token gone' answers into TokenGone."""

    def __init__(self, webhook: discord.Webhook) -> None:
        self._webhook = webhook

    async def edit_message(self, message_id: int, **kwargs) -> None:
        try:
            await self._webhook.edit_message(message_id, **kwargs)
        except discord.HTTPException as exc:
            _raise_if_token_gone(exc)
            raise

    async def send(self, **kwargs) -> discord.Message:
        try:
            return await self._webhook.send(wait=True, **kwargs)
        except discord.HTTPException as exc:
            _raise_if_token_gone(exc)
            raise


def _raise_if_token_gone(exc: discord.HTTPException) -> None:
    if exc.code in TOKEN_GONE_CODES or exc.status == 401:
        raise TokenGone from exc
