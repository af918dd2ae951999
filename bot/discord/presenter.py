"""The Discord side of a job: its status message and its image messages.

While the interaction token lives (15 minutes; we stop using it a minute before), the status is the
reply to the command, edited through the interaction webhook, and the images are followups. After
that, or as soon as Discord says the token is gone, the bot edits that same reply as one of its own
channel messages and posts the images as ordinary messages replying to it; only when the reply
cannot be edited (deleted) does it post a new status message in the channel.

Edits are coalesced: only when what people see changed, and paced as `bot.discord.status_slot` says
(at most once per `edit_interval` seconds per job, queue positions less often). A failed edit is tried
again a few times, then left until the next change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import discord

from bot.discord import i18n
from bot.discord.buttons import job_view
from bot.discord.delivery_notes import delivery_notes, jump_note
from bot.discord.embeds import caption, jump_url, status_embed
from bot.discord.i18n import t
from bot.discord.post_refusal import describe, is_permanent, warn_missing_permissions
from bot.discord.posted_parts import find_part, upload_files
from bot.discord.server_language import ServerLanguages
from bot.discord.status import StatusView, render_status
from bot.discord.status_slot import StatusSlot
from bot.engine.delivery import DeliveryReport, PendingPart, PostRefused, PreparedImage, UploadTooLarge
from bot.logging_setup import for_job
from bot.runcomfy.backoff import doubling
from bot.store.database import Job, Storage

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60
TOKEN_MARGIN = 60  # stop using a token a minute before Discord does
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
TOKEN_GONE_CODES = {50027, 10015}  # invalid webhook token, unknown webhook
UNKNOWN_MESSAGE = 10008
TOO_LARGE_CODE = 40005
TOO_MANY_EDITS_CODE = 30046  # a message older than an hour was edited too often: wait for the next change
EDIT_RETRIES = 4
EDIT_RETRY_PAUSE = 0.25  # doubled after each failed attempt
REMEMBERED_FINISHED_JOBS = 1024


class ReplyGone(Exception):
    """The interaction reply cannot be used any more: the token expired, or the reply was deleted."""

    def __init__(self, *, token_dead: bool) -> None:
        super().__init__("token expired" if token_dead else "reply deleted")
        self.token_dead = token_dead


class DiscordPresenter:
    def __init__(
        self,
        bot: discord.Client,
        storage: Storage,
        *,
        edit_interval: float = 2.0,
        languages: ServerLanguages | None = None,
        queue_edit_interval: float = 15.0,
    ) -> None:
        self._bot = bot
        self._languages = languages or ServerLanguages(bot)
        self._storage = storage
        self._interval = edit_interval
        self._queue_interval = max(queue_edit_interval, edit_interval)
        self._slots: dict[str, StatusSlot] = {}
        self._dead_tokens: set[str] = set()
        self._deleted_replies: set[str] = set()
        self._interaction_limits: dict[int, int] = {}  # guild -> the upload limit its last interaction announced
        self._refused_limits: dict[int, int] = {}  # guild -> a limit learnt from Discord refusing a message
        self._finished: OrderedDict[str, None] = OrderedDict()  # recently finished jobs, oldest first
        self._closed = False
        self._requester_languages: dict[str, str] = {}  # job -> its requester's language, while it runs here
        self.watchers: list[Callable[[Job], None]] = []  # told of every change shown (alerts listen here)

    # ---- the first status ----------------------------------------------------------------------------

    async def attach_reply(self, interaction: discord.Interaction, job: Job) -> Job:
        """Show a new job as the response to `interaction` (its first, or the deferred one) and record where
        that reply lives.

        Discord errors are logged, not raised: the status is then posted in the channel at the next change.
        """
        self._requester_languages[job.id] = i18n.language_of(interaction.locale)
        if interaction.guild_id is not None:
            self._interaction_limits[interaction.guild_id] = interaction.filesize_limit
        view = render_status(job, language=self._language(job))
        try:
            message = await _respond(
                interaction, embed=status_embed(view), view=_buttons(job, view, self._language(job))
            )
        except discord.HTTPException as exc:
            for_job(log, job).warning("the reply could not be edited (HTTP %s); using the channel", exc.status)
            return job
        job = await self._storage.set_reply(
            job.id,
            interaction_token=interaction.token,
            application_id=interaction.application_id,
            token_created_at=interaction.created_at.timestamp(),
            reply_message_id=message.id,
            reply_channel_id=message.channel.id,
        )
        slot = self._slots.setdefault(job.id, StatusSlot(job))
        slot.saw_shown(view, job.state)
        slot.next_edit = time.monotonic() + self._interval
        await warn_missing_permissions(interaction, job)
        return job

    # ---- status message ------------------------------------------------------------------------------

    async def job_changed(self, job: Job) -> None:
        if self._closed:
            return
        for watcher in self.watchers:
            watcher(job)
        slot = self._slots.get(job.id)
        if slot is None:
            if job.id in self._finished and not job.state.terminal:
                return  # a snapshot read before the job finished
            slot = self._slots[job.id] = StatusSlot(job)
        elif job.updated_at < slot.latest.updated_at or (slot.latest.state.terminal and not job.state.terminal):
            return  # an older snapshot must not undo a newer one
        slot.saw(job)
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._run(job.id), name=f"status-{job.id}")
        elif not slot.waits_for_queue_turn(self._interval, self._queue_interval):
            slot.changed.set()

    async def close(self) -> None:
        """Drop pending edits (a restart shows every unfinished job again)."""
        self._closed = True
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        slot = self._slots[job_id]
        failures = 0
        while True:
            slot.changed.clear()
            job = slot.latest
            view = slot.render(self._language(job))
            if view == slot.shown or view == slot.abandoned:
                break
            delay = slot.due(self._interval, self._queue_interval) - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await slot.changed.wait()
                continue  # what to show may have changed meanwhile
            slot.next_edit = time.monotonic() + self._interval
            try:
                await self._show(job, view)
            except Exception as exc:
                failures += 1
                unexpected = not isinstance(exc, discord.HTTPException | PostRefused)
                hopeless = isinstance(exc, PostRefused) or is_permanent(exc)
                hopeless = hopeless or getattr(exc, "code", None) == TOO_MANY_EDITS_CODE
                if hopeless or failures > EDIT_RETRIES:
                    for_job(log, job).warning("gave up editing the status message: %s", exc, exc_info=unexpected)
                    slot.abandoned, failures = view, 0
                else:
                    for_job(log, job).warning("status message not updated (%s); will retry", exc, exc_info=unexpected)
                    pause = doubling(EDIT_RETRY_PAUSE, math.inf, failures - 1)
                    slot.next_edit = time.monotonic() + max(self._interval, pause)
                continue
            slot.saw_shown(view, job.state)
            failures = 0
        if slot.latest.state.terminal:
            self._slots.pop(job_id, None)
            self._requester_languages.pop(job_id, None)
            self._finished[job_id] = None
            if len(self._finished) > REMEMBERED_FINISHED_JOBS:
                self._finished.popitem(last=False)

    async def _show(self, job: Job, view: StatusView) -> None:
        embed, buttons = self._slots[job.id].message(view, self._language(job))  # called by _run: the slot is there
        if job.reply_message_id is not None and self._reply_usable(job):
            try:
                async with _reply_errors():
                    await self._webhook(job).edit_message(job.reply_message_id, embed=embed, view=buttons)
                return
            except ReplyGone as gone:
                self._give_up_reply(job, gone)
        await self._show_in_channel(job, embed, buttons)

    async def _show_in_channel(self, job: Job, embed: discord.Embed, buttons: discord.ui.View | None) -> None:
        channel = await self._channel(job)
        key = f"status_message:{job.id}"
        known = await self._storage.get_meta(key)
        if not known and job.reply_message_id and job.id not in self._deleted_replies:
            # Without the interaction token the bot can still edit its public reply as one of its own messages.
            try:
                await channel.get_partial_message(job.reply_message_id).edit(embed=embed, view=buttons)
                await self._storage.set_meta(key, str(job.reply_message_id))
                return
            except discord.HTTPException as exc:
                self._deleted_replies.add(job.id)
                for_job(log, job).info("its reply cannot be edited (HTTP %s); posting the status anew", exc.status)
        if known:
            try:
                await channel.get_partial_message(int(known)).edit(embed=embed, view=buttons)
                return
            except discord.NotFound:
                for_job(log, job).info("its status message was deleted; posting a new one")
            except discord.Forbidden as exc:
                raise await self._refused(job, exc) from exc
        message = await self._send_to_channel(job, channel, embed=embed, view=buttons)
        await self._storage.set_meta(key, str(message.id))

    # ---- images ---------------------------------------------------------------------------------------

    def _language(self, job: Job) -> str:
        """The status message and the images are public: they speak the server's language."""
        return self._languages.of(job.guild_id)

    def upload_limit(self, job: Job) -> int:
        """Bytes one message may carry in the job's guild, as far as the bot knows."""
        guild = self._bot.get_guild(job.guild_id)
        limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        known = (self._interaction_limits.get(job.guild_id), self._refused_limits.get(job.guild_id))
        return min([limit, *(value for value in known if value)])

    def lower_upload_limit(self, job: Job, limit: int) -> None:
        """Discord refused a message as too large in this guild: use at most `limit` bytes from now on."""
        self._refused_limits[job.guild_id] = min(limit, self._refused_limits.get(job.guild_id, limit))

    async def post_images(
        self, job: Job, batch: Sequence[PreparedImage], total: int, *, nonce: str | None = None
    ) -> str | None:
        """Post one message of images; return its link. Raises UploadTooLarge if Discord finds it too large."""
        content = caption(job, batch[0].index, batch[-1].index, total, self._language(job))
        try:
            message = await self._post(job, content, [image for image in batch if image.path is not None], nonce)
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == TOO_LARGE_CODE:
                raise UploadTooLarge(sum(image.size for image in batch)) from exc
            raise
        return jump_url(job.guild_id, message.channel.id, message.id)

    async def post_link(self, job: Job, image: PreparedImage, total: int, *, nonce: str | None = None) -> str | None:
        """Post a link to an image too large to upload here."""
        content = caption(job, image.index, image.index, total, self._language(job))
        linked = t("Image {number} is too large to upload here; it is at RunComfy: {url}", number=image.index,
                   url=f"<{image.source_url}>")  # fmt: skip
        content += "\n" + linked.in_language(self._language(job))
        message = await self._post(job, content, [], nonce)
        return jump_url(job.guild_id, message.channel.id, message.id)

    async def find_posted(self, job: Job, part: PendingPart) -> str | None:
        """The link of the message carrying `part` if Discord already has it (read back from the channel), else None.

        Followups and channel messages alike are in the channel's history; without Read Message History the
        answer is None, and the part is posted again.
        """
        try:
            channel = await self._channel(job)
            return await find_part(channel, self._bot.user, job, part)
        except (discord.HTTPException, PostRefused) as exc:
            for_job(log, job).warning("could not read back the channel to look for images %d-%d: %s", part.first,
                                      part.last, exc)  # fmt: skip
            return None

    async def delivery_finished(self, job: Job, report: DeliveryReport) -> None:
        notes = [jump_note(report.progress.first_url)] if report.progress.first_url else []
        notes.extend(delivery_notes(report))
        self._slots.setdefault(job.id, StatusSlot(job)).notes = tuple(notes)
        await self.job_changed(job)

    async def _post(
        self, job: Job, content: str, images: Sequence[PreparedImage], nonce: str | None
    ) -> discord.Message:
        allowed = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        if self._reply_usable(job):
            try:
                async with upload_files(images) as files, _reply_errors():
                    return await self._webhook(job).send(content=content, allowed_mentions=allowed, wait=True, **files)
            except ReplyGone as gone:
                self._give_up_reply(job, gone)
            except discord.HTTPException as exc:
                if is_permanent(exc):
                    raise await self._refused(job, exc) from exc
                raise
        channel = await self._channel(job)
        extra = {"nonce": nonce} if nonce else {}  # discord.py sends it with enforce_nonce
        async with upload_files(images) as files:
            return await self._send_to_channel(
                job, channel, content=content, allowed_mentions=allowed, **files, **extra
            )

    # ---- plumbing -------------------------------------------------------------------------------------

    def _token_alive(self, job: Job) -> bool:
        if job.id in self._dead_tokens or not (job.interaction_token and job.application_id and job.token_created_at):
            return False
        return time.time() < job.token_created_at + TOKEN_LIFETIME - TOKEN_MARGIN

    def _reply_usable(self, job: Job) -> bool:
        return bool(job.reply_message_id) and job.id not in self._deleted_replies and self._token_alive(job)

    def _give_up_reply(self, job: Job, gone: ReplyGone) -> None:
        (self._dead_tokens if gone.token_dead else self._deleted_replies).add(job.id)
        for_job(log, job).info("the command's reply can no longer be used (%s); going on in the channel", gone)

    def _webhook(self, job: Job) -> discord.Webhook:
        assert job.application_id is not None and job.interaction_token is not None
        webhook = discord.Webhook.partial(job.application_id, job.interaction_token, client=self._bot)
        webhook.type = discord.WebhookType.application  # an interaction's webhook: it may send ephemeral messages
        return webhook

    async def _channel(self, job: Job) -> Any:
        channel_id = job.reply_channel_id or job.channel_id
        channel = self._bot.get_channel(channel_id)
        if channel is not None:
            return channel
        try:
            return await self._bot.fetch_channel(channel_id)
        except (discord.Forbidden, discord.NotFound) as exc:
            raise await self._refused(job, exc) from exc

    async def _send_to_channel(self, job: Job, channel: Any, **kwargs: Any) -> discord.Message:
        if job.reply_message_id:
            kwargs["reference"] = discord.MessageReference(
                message_id=job.reply_message_id, channel_id=channel.id, fail_if_not_exists=False
            )
        try:
            message: discord.Message = await channel.send(**kwargs)
            return message
        except discord.HTTPException as exc:
            if is_permanent(exc):  # a deleted channel or a missing permission: trying again cannot help
                raise await self._refused(job, exc) from exc
            raise

    async def _refused(self, job: Job, exc: BaseException | None = None) -> PostRefused:
        """Tell the requester once (privately while the token lives, else by DM), and the admins in the log."""
        language = self._requester_languages.get(job.id) or self._language(job)  # after a restart: the server's
        refusal = describe(self._bot, job, exc, language)
        key = f"permission_reported:{job.id}"
        if await self._storage.get_meta(key):
            return PostRefused(refusal.short)
        await self._storage.set_meta(key, "1")
        for_job(log, job).warning("%s", refusal.log_line)
        if not refusal.channel_gone and self._token_alive(job):
            try:
                await self._webhook(job).send(content=refusal.member_text, ephemeral=True)
                return PostRefused(refusal.short)
            except discord.HTTPException:
                pass  # told by DM instead
        try:
            user = self._bot.get_user(job.user_id) or await self._bot.fetch_user(job.user_id)
            await user.send(refusal.member_text)
        except discord.HTTPException:
            for_job(log, job).warning("the requester could not be told (no DM either)")
        return PostRefused(refusal.short)


async def _respond(interaction: discord.Interaction, **content: Any) -> discord.InteractionMessage:
    """The interaction's response with this content: sent as its first response, or edited into the deferred one."""
    if interaction.response.is_done():
        return await interaction.edit_original_response(**content)
    sent = await interaction.response.send_message(**content)
    if isinstance(sent.resource, discord.InteractionMessage):
        return sent.resource
    return await interaction.original_response()


def _buttons(job: Job, view: StatusView, language: str) -> discord.ui.View | None:
    return job_view(job.id, cancellable=view.cancellable, finished=view.finished, language=language)


@contextlib.asynccontextmanager
async def _reply_errors() -> AsyncIterator[None]:
    """Turn Discord's 'token gone' and 'reply gone' answers on the interaction webhook into ReplyGone."""
    try:
        yield
    except discord.HTTPException as exc:
        if exc.code == UNKNOWN_MESSAGE:
            raise ReplyGone(token_dead=False) from exc
        if exc.code in TOKEN_GONE_CODES or exc.status == 401:
            raise ReplyGone(token_dead=True) from exc
        raise
