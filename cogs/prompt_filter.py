"""/filter: admins block words or patterns in prompts (see `bot.engine.prompt_filter` for the syntax)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import quota_format
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.tree import guild_of
from bot.domain import periods
from bot.engine.prompt_filter import MAX_TERM_CHARS, MAX_TERMS, PromptFilter, TermError

log = logging.getLogger(__name__)

SYNTAX = "Whole words, any case; `*` stands for any letters inside a word (`cat*` also blocks “cats”)."


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class PromptFilterCommands(
    commands.GroupCog, group_name="filter", group_description="Words or patterns not allowed in prompts (admins)"
):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def prompt_filter(self) -> PromptFilter:
        return self.bot.jobs.prompt_filter

    @app_commands.command(name="add", description="Block a word or pattern in prompts on this server")
    @app_commands.describe(term="A word or a few words; * stands for any letters, e.g. gore*")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def add(self, interaction: Interaction, term: app_commands.Range[str, 1, MAX_TERM_CHARS]) -> None:
        try:
            canonical, added = await self.prompt_filter.add(guild_of(interaction), term, added_by=interaction.user.id)
        except TermError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        if not added:
            text = f"`{canonical}` is already blocked; nothing changed."
        else:
            log.info(
                "prompt filter in guild %s: admin %s blocked %r", interaction.guild_id, interaction.user.id, canonical
            )
            text = f"Blocked: `{canonical}`. Prompts containing it are refused before any quota is used.\n{SYNTAX}"
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="remove", description="Allow a blocked word or pattern again")
    @app_commands.describe(term="The term as `/filter list` shows it")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(self, interaction: Interaction, term: app_commands.Range[str, 1, MAX_TERM_CHARS]) -> None:
        try:
            canonical, removed = await self.prompt_filter.remove(guild_of(interaction), term)
        except TermError:
            removed, canonical = False, term
        if removed:
            log.info(
                "prompt filter in guild %s: admin %s unblocked %r", interaction.guild_id, interaction.user.id, canonical
            )
            text = f"`{canonical}` is allowed again."
        else:
            shown = discord.utils.escape_markdown(canonical)
            text = f"“{shown}” is not on this server's list, so nothing changed. `/filter list` shows the list."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="list", description="Show the words and patterns blocked in prompts here")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def list_terms(self, interaction: Interaction) -> None:
        guild_id = guild_of(interaction)
        terms = await self.prompt_filter.terms(guild_id)
        guild = await self.bot.quotas.guild_settings(guild_id)
        since, _ = periods.period_bounds(guild.period, self.bot.storage.clock())
        refused = await self.prompt_filter.blocked_count(guild_id, since=since)
        when = periods.current(guild.period)
        if not terms:
            lines = ["No words or patterns are blocked on this server. Add one with `/filter add`."]
        else:
            lines = [f"**Blocked in prompts** ({len(terms)} of at most {MAX_TERMS})"]
            lines.extend(f"• `{item.term}` (added by <@{item.added_by}> <t:{int(item.added_at)}:R>)" for item in terms)
        lines.append(f"Prompts refused {when}: {refused}")
        await interaction.response.send_message(quota_format.fit(lines), ephemeral=True)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(PromptFilterCommands(bot))
