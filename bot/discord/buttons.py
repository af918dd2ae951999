"""Buttons that keep working after a restart: the job id lives in the custom_id."""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.i18n import SOURCE_LANGUAGE, t, translate
from bot.discord.job_start import refuse, start_job
from bot.discord.tree import GENERIC_ERROR, RESTARTING
from bot.domain.seedream import MAX_SEED
from bot.engine.outcomes import CancelReply
from bot.logging_setup import for_job

if TYPE_CHECKING:
    from bot.discord.bot import SeedreamBot
    from bot.domain.job import Job

log = logging.getLogger(__name__)

CANCEL_ANSWERS = {
    CancelReply.CANCELLED: t("🚫 Cancelled. The images it reserved were given back."),
    CancelReply.NOT_CANCELLABLE: t(
        "This job is already generating, and RunComfy cannot stop a job once it runs. "
        "The images will be posted when they are ready."
    ),
    CancelReply.REFUSED: t(
        "RunComfy would not cancel the job just now; it is still queued. Please try the Cancel button again in a "
        "moment."
    ),
    CancelReply.FINISHED: t("This job has already finished."),
    CancelReply.NOT_SUBMITTED_YET: t("The job is still being sent to RunComfy; try again in a few seconds."),
    CancelReply.UNKNOWN_JOB: t("I don't know this job any more."),
    CancelReply.UNAVAILABLE: t("RunComfy could not be reached to cancel the job. Please try again in a moment."),
}
NOT_YOURS = t("Only the member who started this job, or someone with Manage Server, can cancel it.")
UNKNOWN_JOB = CANCEL_ANSWERS[CancelReply.UNKNOWN_JOB]


_Button = discord.ui.Button[discord.ui.View]


def _job_button(action: str, job_id: str, label: str, style: discord.ButtonStyle, emoji: str) -> _Button:
    """A button about one job: its custom_id, `seedream:<action>:<job id>`, outlives a restart."""
    return discord.ui.Button(label=label, style=style, custom_id=f"seedream:{action}:{job_id}", emoji=emoji)


async def _job_of_this_server(interaction: discord.Interaction[SeedreamBot], job_id: str) -> Job | None:
    """The button's job, if it is one of this server's; otherwise the member is told so, and None."""
    job = await interaction.client.storage.get_job(job_id)
    if job is None or interaction.guild_id is None or job.guild_id != interaction.guild_id:
        await interaction.response.send_message(translate(UNKNOWN_JOB, interaction.locale), ephemeral=True)
        return None
    return job


class CancelButton(discord.ui.DynamicItem[_Button], template=r"seedream:cancel:(?P<job_id>[0-9a-zA-Z_-]{1,40})"):
    def __init__(self, job_id: str, *, label: str = "Cancel") -> None:
        self.job_id = job_id
        super().__init__(_job_button("cancel", job_id, label, discord.ButtonStyle.danger, "✖️"))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction[SeedreamBot]) -> None:  # type: ignore[override]
        bot = interaction.client
        job = await _job_of_this_server(interaction, self.job_id)
        if job is None:
            return
        permissions = interaction.permissions
        if interaction.user.id != job.user_id and not (permissions.manage_guild or permissions.administrator):
            await interaction.response.send_message(translate(NOT_YOURS, interaction.locale), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await bot.tracker.cancel(job.id)
        for_job(log, job).info("cancel clicked by user %s -> %s", interaction.user.id, reply.value)
        await interaction.followup.send(translate(CANCEL_ANSWERS[reply], interaction.locale), ephemeral=True)


class AgainButton(discord.ui.DynamicItem[_Button], template=r"seedream:again:(?P<job_id>[0-9a-zA-Z_-]{1,40})"):
    """Start a new job with the same options and a new random seed, for whoever clicks (on their own quota)."""

    def __init__(self, job_id: str, *, label: str = "Again") -> None:
        self.job_id = job_id
        super().__init__(_job_button("again", job_id, label, discord.ButtonStyle.secondary, "🔁"))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> AgainButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction[SeedreamBot]) -> None:  # type: ignore[override]
        bot = interaction.client
        if not bot.accepting_commands:
            await interaction.response.send_message(translate(RESTARTING, interaction.locale), ephemeral=True)
            return
        job = await _job_of_this_server(interaction, self.job_id)
        if job is None:
            return
        for_job(log, job).info("Again clicked by user %s", interaction.user.id)
        try:
            # A seed of its own (not left to RunComfy) so the new set shows it and can be made again.
            again = await start_job(interaction, {**job.options, "seed": secrets.randbelow(MAX_SEED + 1)})
        except Exception:
            for_job(log, job).exception("Again failed for user %s", interaction.user.id)
            await refuse(interaction, GENERIC_ERROR)
            return
        if again is not None:
            for_job(log, job).info("started again as job %s", again.id)


def job_view(
    job_id: str, *, cancellable: bool, finished: bool = False, language: str = SOURCE_LANGUAGE
) -> discord.ui.View | None:
    """The buttons under a status message: Cancel while it can be cancelled, Again once the job is finished.

    Their labels are in `language`, the server's, like the status message."""
    if not (cancellable or finished):
        return None
    view = discord.ui.View(timeout=None)
    if cancellable:
        view.add_item(CancelButton(job_id, label=t("Cancel").in_language(language)))
    if finished:
        view.add_item(AgainButton(job_id, label=t("Again").in_language(language)))
    return view
