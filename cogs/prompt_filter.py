"""/filter: admins block words or patterns in prompts (see `bot.engine.prompt_filter` for the syntax)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import i18n, quota_format
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.i18n import Text, command, t
from bot.discord.quota_messages import current_period
from bot.discord.tree import guild_of
from bot.domain import periods
from bot.engine.prompt_filter import MAX_TERM_CHARS, MAX_TERMS, BadTerm, PromptFilter, TermError

log = logging.getLogger(__name__)

SYNTAX = t("Whole words, any case; `*` stands for any letters inside a word (`cat*` also blocks “cats”).")


def term_error_text(error: TermError) -> Text:
    """Why a term cannot be blocked, for the admin."""
    code, values = error.code, error.values
    if code is BadTerm.EMPTY:
        return t("The term is empty: give a word or a few words to block.")
    if code is BadTerm.TOO_LONG:
        return t("A term can be at most {maximum} characters long.", maximum=values["maximum"])
    if code is BadTerm.BAD_CHARACTERS:
        return t(
            "A term can only contain letters, digits, spaces, apostrophes, hyphens and `*` "
            "(which stands for any letters, e.g. `cat*`)."
        )
    if code is BadTerm.NO_LETTERS:
        return t("The term has no letters or digits.")
    if code is BadTerm.TOO_MANY_WORDS:
        return t("A term can have at most {maximum} words.", maximum=values["maximum"])
    if code is BadTerm.BARE_STAR:
        return t("Every word of a term needs a letter or digit: `*` alone would match any word.")
    if code is BadTerm.TOO_SHORT:
        return t("A term needs at least {minimum} letters or digits.", minimum=values["minimum"])
    return t(
        "This server already blocks {maximum} terms, the most it can. Remove one first.", maximum=values["maximum"]
    )


async def answer(interaction: Interaction, *lines: Text) -> None:
    """A private answer in the admin's language."""
    text = quota_format.say(lines, i18n.language_of(interaction.locale))
    await interaction.response.send_message(text, ephemeral=True)


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
            await answer(interaction, term_error_text(exc))
            return
        if not added:
            await answer(interaction, t("{term} is already blocked; nothing changed.", term=f"`{canonical}`"))
            return
        log.info("prompt filter in guild %s: admin %s blocked %r", interaction.guild_id, interaction.user.id, canonical)
        blocked = t(
            "Blocked: {term}. Prompts containing it are refused before any quota is used.", term=f"`{canonical}`"
        )
        await answer(interaction, blocked, SYNTAX)

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
            text = t("{term} is allowed again.", term=f"`{canonical}`")
        else:
            text = t(
                "“{term}” is not on this server's list, so nothing changed. `/{filter} {list}` shows the list.",
                term=discord.utils.escape_markdown(canonical),
                filter=command("filter"),
                list=command("list"),
            )
        await answer(interaction, text)

    @app_commands.command(name="list", description="Show the words and patterns blocked in prompts here")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def list_terms(self, interaction: Interaction) -> None:
        guild_id = guild_of(interaction)
        terms = await self.prompt_filter.terms(guild_id)
        guild = await self.bot.quotas.guild_settings(guild_id)
        since, _ = periods.period_bounds(guild.period, self.bot.storage.clock())
        refused = await self.prompt_filter.blocked_count(guild_id, since=since)
        if not terms:
            lines = [
                t("No words or patterns are blocked on this server. Add one with `/{filter} {add}`.",
                  filter=command("filter"), add=command("add"))
            ]  # fmt: skip
        else:
            lines = [t("**Blocked in prompts** ({count} of at most {maximum})", count=len(terms), maximum=MAX_TERMS)]
            lines.extend(
                t("• {term} (added by {member} {time})", term=f"`{item.term}`", member=f"<@{item.added_by}>",
                  time=f"<t:{int(item.added_at)}:R>")
                for item in terms
            )  # fmt: skip
        lines.append(t("Prompts refused {when}: {count}", when=current_period(guild.period), count=refused))
        await answer(interaction, *lines)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(PromptFilterCommands(bot))
