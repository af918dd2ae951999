"""Member commands: /usage (my quota) and /jobs (my last image sets, with Cancel buttons); the Again button."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import quota_format
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.buttons import CancelButton
from bot.discord.status import render_status
from bot.domain import periods
from bot.domain.job_state import JobState
from bot.domain.text import shorten
from bot.store.database import Job

RECENT_JOBS = 10
PROMPT_CHARS = 60
SERVER_ONLY = "This command works in a server, not in direct messages."

STATE_LABELS = {
    JobState.PENDING: "⏳ sending",
    JobState.SUBMITTED: "⏳ sending",
    JobState.QUEUED: "⏳ queued",
    JobState.RUNNING: "🎨 generating",
    JobState.DELIVERING: "📤 uploading",
    JobState.DELIVERED: "✅ delivered",
    JobState.CANCELLED: "🚫 cancelled",
    JobState.FAILED: "⚠️ failed",
    JobState.EXPIRED: "⚠️ expired",
    JobState.UNKNOWN: "❔ outcome unknown",
}


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def job_line(number: int, job: Job) -> str:
    """One job of /jobs: state, images delivered of asked, the prompt, a link to its message, when."""
    prompt = discord.utils.escape_markdown(shorten(" ".join(str(job.options.get("prompt", "")).split()), PROMPT_CHARS))
    parts = [
        f"**{number}.** {STATE_LABELS[job.state]}",
        f"{job.images_delivered}/{job.images_reserved} images",
        f"“{prompt}”",
    ]
    if job.reply_message_id:
        channel_id = job.reply_channel_id or job.channel_id
        parts.append(f"[message]({message_link(job.guild_id, channel_id, job.reply_message_id)})")
    parts.append(f"<t:{int(job.created_at)}:R>")
    return " · ".join(parts)


def jobs_view(jobs: list[Job]) -> discord.ui.View | None:
    """A Cancel button for each job still waiting, labelled with its number in the list."""
    view = discord.ui.View(timeout=None)
    for number, job in enumerate(jobs, 1):
        if render_status(job).cancellable:
            view.add_item(CancelButton(job.id, label=f"Cancel {number}"))
    return view if view.children else None


class Member(commands.Cog):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Your image quota here: used, reserved, left, next reset")
    @app_commands.guild_only()
    async def usage(self, interaction: Interaction) -> None:
        if interaction.guild_id is None:
            await interaction.response.send_message(SERVER_ONLY, ephemeral=True)
            return
        quotas = self.bot.quotas
        guild_id, user = interaction.guild_id, interaction.user
        roles = [role.id for role in getattr(user, "roles", [])]
        usage = await quotas.usage(guild_id, user.id, roles)
        guild = await quotas.guild_settings(guild_id)
        lines = ["**Your images on this server**"]
        lines.extend(quota_format.usage_lines(usage, max_concurrent=guild.max_concurrent))
        if guild.budget_images is not None:
            used = await quotas.guild_usage(guild_id)
            when = periods.current(guild.budget_period or guild.period)
            lines.append(f"Server budget: {quota_format.images(used)} of {quota_format.budget(guild)} used {when}")
        await interaction.response.send_message(quota_format.fit(lines), ephemeral=True)

    @app_commands.command(name="jobs", description="Your last 10 image sets, with Cancel buttons for waiting ones")
    @app_commands.guild_only()
    async def jobs(self, interaction: Interaction) -> None:
        if interaction.guild_id is None:
            await interaction.response.send_message(SERVER_ONLY, ephemeral=True)
            return
        recent = await self.bot.storage.recent_jobs(interaction.guild_id, interaction.user.id, RECENT_JOBS)
        if not recent:
            await interaction.response.send_message(
                "You have no image sets on this server yet. Start one with `/imagine`.", ephemeral=True
            )
            return
        lines = ["**Your latest image sets**, newest first", *(job_line(n, job) for n, job in enumerate(recent, 1))]
        view = jobs_view(recent)
        if view is None:
            await interaction.response.send_message(quota_format.fit(lines), ephemeral=True)
        else:
            await interaction.response.send_message(quota_format.fit(lines), view=view, ephemeral=True)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(Member(bot))
