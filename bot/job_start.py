"""Starting a job from an interaction: reserve its images, show its status message, submit it.

The interaction must already be deferred with `thinking=True`: its original response becomes the job's
status message. Used by the Again button; `/imagine` follows the same steps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord

from bot.jobstate import JobState
from bot.quotas import QuotaRefused
from bot.seedream import ValidationError
from bot.storage import Job

log = logging.getLogger(__name__)

NOT_STARTED = "something went wrong before it could be sent to RunComfy"


async def refuse(interaction: discord.Interaction, text: str) -> None:
    """Replace the public 'thinking…' response by a message only the member sees."""
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("the deferred response was already gone")
    await interaction.followup.send(text, ephemeral=True)


async def start_job(interaction: discord.Interaction, options: Mapping[str, Any]) -> Job | None:
    """Create, show and submit a job with these options (`SeedreamRequest.options()` keys) for the member.

    Returns the submitted job, or None when it was refused (invalid, blocked prompt, over quota): the member
    was then told why, privately. A job that cannot be sent gives its images back before the error propagates.
    """
    bot: Any = interaction.client
    member = interaction.user
    try:
        job, _request = await bot.jobs.create(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=member.id,
            role_ids=[role.id for role in getattr(member, "roles", [])],
            prompt=options["prompt"],
            images=options.get("images"),
            aspect=options.get("aspect"),
            seed=options.get("seed"),
            mode=options.get("mode"),
        )
    except (ValidationError, QuotaRefused) as exc:
        await refuse(interaction, getattr(exc, "message", None) or str(exc))
        return None
    try:
        job = await bot.presenter.attach_reply(interaction, job)
        job = await bot.jobs.submit(job)
    except Exception:
        current = await bot.storage.get_job(job.id)
        if current is not None and current.state is JobState.PENDING:
            job = await bot.storage.finish_job(job.id, JobState.FAILED, error=NOT_STARTED)
            await bot.presenter.job_changed(job)
        raise
    await bot.presenter.job_changed(job)
    return job
