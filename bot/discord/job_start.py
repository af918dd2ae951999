"""Starting a job from an interaction: reserve its images, show its status message, submit it.

Checking and reserving take milliseconds, so the interaction's first response is already the answer:
a refusal only the member sees, or the job's public status message. Discord wants a first response
within 3 seconds; if checking takes longer than `CHECK_BUDGET` (a locked database), the response is
deferred publicly ("thinking…") and becomes the status message, or is replaced by a private refusal.
Used by `/imagine` and the Again button.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from bot.discord import texts
from bot.discord.i18n import translate
from bot.discord.tree import channel_of, guild_of
from bot.domain.job_state import JobState
from bot.domain.seedream import ValidationError
from bot.engine.jobs import OutOfCredit
from bot.engine.refusals import QuotaRefused
from bot.store.database import Job

if TYPE_CHECKING:
    from bot.discord.bot import SeedreamBot

log = logging.getLogger(__name__)

NOT_STARTED = "something went wrong before it could be sent to RunComfy"
CHECK_BUDGET = 1.5  # seconds of checking before the interaction is deferred, well within Discord's 3


async def refuse(interaction: discord.Interaction, text: str) -> None:
    """Answer with a message only the member sees: the first response if there was none yet, else replace
    the public 'thinking…' response by a private followup. It is said in the member's language."""
    text = translate(text, interaction.locale)
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("the deferred response was already gone")
    try:
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        # Some Discord versions refuse a followup once the deferred response is deleted; nothing more can be sent.
        log.warning("a refusal could not be shown to user %s (HTTP %s)", interaction.user.id, exc.status)


async def start_job(interaction: discord.Interaction[SeedreamBot], options: Mapping[str, Any]) -> Job | None:
    """Create, show and submit a job with these options (`SeedreamRequest.options()` keys) for the member.

    Returns the submitted job, or None when it was refused (invalid, blocked prompt, over quota): the member
    was then told why, privately. A job that cannot be sent gives its images back before the error propagates.
    """
    bot = interaction.client
    member = interaction.user
    creating = asyncio.ensure_future(
        bot.jobs.create(
            guild_id=guild_of(interaction),
            channel_id=channel_of(interaction),
            user_id=member.id,
            role_ids=[role.id for role in getattr(member, "roles", [])],
            prompt=options["prompt"],
            images=options.get("images"),
            aspect=options.get("aspect"),
            seed=options.get("seed"),
            mode=options.get("mode"),
        )
    )
    done, _pending = await asyncio.wait({creating}, timeout=CHECK_BUDGET)
    if not done:
        log.info("checking the job took over %.1f s; deferring the answer", CHECK_BUDGET)
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            log.warning("could not defer the interaction (HTTP %s)", exc.status)
    try:
        job, _request = await creating
    except OutOfCredit as exc:
        await refuse(interaction, texts.refusal_text(exc))
        return None
    except (ValidationError, QuotaRefused) as exc:
        await refuse(interaction, texts.refusal_text(exc))
        return None
    try:
        job = await bot.presenter.attach_reply(interaction, job)
        job = await bot.jobs.submit(job)
    except Exception:
        try:
            current = await bot.storage.get_job(job.id)
            if current is not None and current.state is JobState.PENDING and current.submitted_at is None:
                job = await bot.storage.finish_job(job.id, JobState.FAILED, error=NOT_STARTED)
                await bot.presenter.job_changed(job)
        except Exception as cleanup:  # never hide the first error; the next start ends the job
            log.warning("job %s could not be ended after a failed start: %s", job.id, cleanup)
        raise
    await bot.presenter.job_changed(job)
    return job
