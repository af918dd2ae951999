"""Member commands: /usage (my quota) and /jobs (my last image sets, with Cancel buttons); the Again button."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import i18n, quota_format
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.buttons import CancelButton
from bot.discord.i18n import t, tn
from bot.discord.quota_messages import current_period
from bot.discord.status import render_status
from bot.discord.tree import SERVER_ONLY
from bot.domain.job_state import JobState
from bot.domain.text import shorten
from bot.store.database import Job

RECENT_JOBS = 10
PROMPT_CHARS = 60

STATE_LABELS = {
    JobState.PENDING: t("⏳ sending"),
    JobState.SUBMITTED: t("⏳ sending"),
    JobState.QUEUED: t("⏳ queued"),
    JobState.RUNNING: t("🎨 generating"),
    JobState.DELIVERING: t("📤 uploading"),
    JobState.DELIVERED: t("✅ delivered"),
    JobState.CANCELLED: t("🚫 cancelled"),
    JobState.FAILED: t("⚠️ failed"),
    JobState.EXPIRED: t("⚠️ expired"),
    JobState.UNKNOWN: t("❔ outcome unknown"),
}


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def job_line(number: int, job: Job, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """One job of /jobs (in `language`): state, images delivered of asked, the prompt, a link to its message, when."""
    prompt = discord.utils.escape_markdown(shorten(" ".join(str(job.options.get("prompt", "")).split()), PROMPT_CHARS))
    parts = [
        f"**{number}.** {STATE_LABELS[job.state].in_language(language)}",
        tn(
            "{delivered}/{count} image",
            "{delivered}/{count} images",
            job.images_reserved,
            delivered=job.images_delivered,
        ).in_language(language),
        f"“{prompt}”",
    ]
    if job.reply_message_id:
        channel_id = job.reply_channel_id or job.channel_id
        label = t("message").in_language(language)
        parts.append(f"[{label}]({message_link(job.guild_id, channel_id, job.reply_message_id)})")
    parts.append(f"<t:{int(job.created_at)}:R>")
    return " · ".join(parts)


def jobs_view(jobs: list[Job], language: str = i18n.SOURCE_LANGUAGE) -> discord.ui.View | None:
    """A Cancel button for each job still waiting, labelled with its number in the list."""
    view = discord.ui.View(timeout=None)
    for number, job in enumerate(jobs, 1):
        if render_status(job).cancellable:
            view.add_item(CancelButton(job.id, label=t("Cancel {number}", number=number).in_language(language)))
    return view if view.children else None


class Member(commands.Cog):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Your image quota here: used, reserved, left, next reset")
    @app_commands.guild_only()
    async def usage(self, interaction: Interaction) -> None:
        language = i18n.language_of(interaction.locale)  # only the member sees the answer
        if interaction.guild_id is None:
            await interaction.response.send_message(SERVER_ONLY.in_language(language), ephemeral=True)
            return
        quotas = self.bot.quotas
        guild_id, user = interaction.guild_id, interaction.user
        roles = [role.id for role in getattr(user, "roles", [])]
        usage = await quotas.usage(guild_id, user.id, roles)
        guild = await quotas.guild_settings(guild_id)
        lines = [t("**Your images on this server**")]
        lines.extend(quota_format.usage_lines(usage, max_concurrent=guild.max_concurrent))
        if guild.budget_images is not None:
            used = await quotas.guild_usage(guild_id)
            when = current_period(guild.budget_period or guild.period)
            budget = quota_format.budget(guild)
            lines.append(
                t(
                    "Server budget: {used} of {budget} used {when}",
                    used=quota_format.images(used),
                    budget=budget,
                    when=when,
                )
            )
        await interaction.response.send_message(quota_format.say(lines, language), ephemeral=True)

    @app_commands.command(name="jobs", description="Your last 10 image sets, with Cancel buttons for waiting ones")
    @app_commands.guild_only()
    async def jobs(self, interaction: Interaction) -> None:
        language = i18n.language_of(interaction.locale)  # only the member sees the list
        if interaction.guild_id is None:
            await interaction.response.send_message(SERVER_ONLY.in_language(language), ephemeral=True)
            return
        recent = await self.bot.storage.recent_jobs(interaction.guild_id, interaction.user.id, RECENT_JOBS)
        if not recent:
            empty = t("You have no image sets on this server yet. Start one with `/imagine`.")
            await interaction.response.send_message(empty.in_language(language), ephemeral=True)
            return
        lines = [
            t("**Your latest image sets**, newest first").in_language(language),
            *(job_line(n, job, language) for n, job in enumerate(recent, 1)),
        ]
        view = jobs_view(recent, language)
        if view is None:
            await interaction.response.send_message(quota_format.fit(lines, language=language), ephemeral=True)
        else:
            text = quota_format.fit(lines, language=language)
            await interaction.response.send_message(text, view=view, ephemeral=True)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(Member(bot))
