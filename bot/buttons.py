"""Buttons that keep working after a restart: the job id lives in the custom_id."""

from __future__ import annotations

import logging

import discord

from bot.tracker import CancelReply

log = logging.getLogger(__name__)

CANCEL_ANSWERS = {
    CancelReply.CANCELLED: "🚫 Cancelled. The images it reserved are back in your quota.",
    CancelReply.NOT_CANCELLABLE: (
        "This job is already generating, and RunComfy cannot stop a job once it runs. "
        "The images will be posted when they are ready."
    ),
    CancelReply.FINISHED: "This job has already finished.",
    CancelReply.NOT_SUBMITTED_YET: "The job is still being sent to RunComfy; try again in a few seconds.",
    CancelReply.UNKNOWN_JOB: "I don't know this job any more.",
    CancelReply.UNAVAILABLE: "RunComfy could not be reached to cancel the job. Please try again in a moment.",
}


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"seedream:cancel:(?P<job_id>[0-9a-zA-Z_-]{1,40})"
):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"seedream:cancel:{job_id}", emoji="✖️"
            )
        )

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match) -> CancelButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        job = await bot.storage.get_job(self.job_id)
        if job is None or job.guild_id != interaction.guild_id:
            await interaction.response.send_message(CANCEL_ANSWERS[CancelReply.UNKNOWN_JOB], ephemeral=True)
            return
        permissions = interaction.permissions
        if interaction.user.id != job.user_id and not (permissions.manage_guild or permissions.administrator):
            await interaction.response.send_message(
                "Only the member who started this job, or someone with Manage Server, can cancel it.", ephemeral=True
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await bot.tracker.cancel(job.id)
        log.info("job %s: cancel clicked by user %s -> %s", job.id, interaction.user.id, reply.value)
        await interaction.followup.send(CANCEL_ANSWERS[reply], ephemeral=True)


def job_view(job_id: str, *, cancellable: bool) -> discord.ui.View | None:
    if not cancellable:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view
