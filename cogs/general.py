"""General commands: `/help`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import i18n
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.i18n import t

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
FETCH_IDS_SECONDS = 1.5  # /help must answer within Discord's 3 seconds; without ids it names commands as text

COMMANDS_HEADING = t("**Commands**")
ADMINS_HEADING = t("**For admins** (Manage Server)")

Mention = Callable[[str], str]


def _for_admins(command: app_commands.Command[Any, ..., Any] | app_commands.Group) -> bool:
    permissions = command.default_permissions
    return permissions is not None and (permissions.manage_guild or permissions.administrator)


def mention_with(ids: Mapping[str, int], language: str = i18n.SOURCE_LANGUAGE) -> Mention:
    """`</name:id>`, which Discord shows as a clickable command in the reader's language, for commands whose id is
    known; else `/name` as the reader's Discord names it."""
    names = i18n.translations(language, i18n.COMMANDS)

    def mention(qualified_name: str) -> str:
        command_id = ids.get(qualified_name.split(" ")[0])
        if command_id:
            return f"</{qualified_name}:{command_id}>"
        return "`/" + " ".join(names.pgettext("command", part) for part in qualified_name.split(" ")) + "`"

    return mention


def command_lines(
    tree: app_commands.CommandTree,
    *,
    admins: bool = False,
    mention: Mention | None = None,
    language: str = i18n.SOURCE_LANGUAGE,
) -> list[str]:
    """One line per command (and per subcommand), sorted by name: the members' ones, or the admins' ones."""
    mention = mention or mention_with({}, language)
    descriptions = i18n.translations(language, i18n.COMMANDS)
    lines: list[str] = []

    def walk(command: app_commands.Command[Any, ..., Any] | app_commands.Group) -> None:
        if isinstance(command, app_commands.Group):
            for child in sorted(command.commands, key=lambda c: c.name):
                walk(child)
        else:
            lines.append(f"{mention(command.qualified_name)} — {descriptions.gettext(command.description)}")

    for command in sorted(tree.get_commands(type=discord.AppCommandType.chat_input), key=lambda c: c.name):
        if _for_admins(command) == admins:
            walk(command)
    return lines


def help_text(
    tree: app_commands.CommandTree,
    *,
    admin: bool = False,
    ids: Mapping[str, int] | None = None,
    language: str = i18n.SOURCE_LANGUAGE,
) -> str:
    """What /help says, in `language`: the admins' commands only for someone who may use them."""
    mention = mention_with(ids or {}, language)
    about = t(
        "**Seedream bot** turns a text prompt into a set of 1 to 15 related images with Seedream 4.0, generated "
        "through RunComfy. Start one with {imagine}; its reply shows where the job stands and the images follow. "
        "**{cancel}** stops a job still waiting in the queue; **{again}** repeats a finished one with a new seed. "
        "Each server gives its members an image quota per period: a job reserves its images, and what it does not "
        "deliver goes back to you.",
        imagine=mention("imagine"),
        cancel=t("Cancel"),
        again=t("Again"),
    ).in_language(language)
    members = "\n".join(command_lines(tree, mention=mention, language=language))
    text = f"{about}\n\n{COMMANDS_HEADING.in_language(language)}\n{members}"
    admin_lines = command_lines(tree, admins=True, mention=mention, language=language) if admin else []
    if admin_lines:
        text += f"\n\n{ADMINS_HEADING.in_language(language)}\n" + "\n".join(admin_lines)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


class General(commands.Cog):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot
        self._ids: dict[str, int] = {}

    async def _command_ids(self) -> dict[str, int]:
        """The registered commands' ids by name, asked of Discord once (they stay while the commands exist)."""
        if not self._ids:
            dev_guild = getattr(getattr(self.bot, "settings", None), "dev_guild_id", None)
            guild = discord.Object(dev_guild) if dev_guild else None
            try:
                fetched = await asyncio.wait_for(self.bot.tree.fetch_commands(guild=guild), FETCH_IDS_SECONDS)
            except (discord.HTTPException, TimeoutError) as exc:
                log.info("command ids unavailable for /help (%s); naming the commands as text", type(exc).__name__)
                return {}
            self._ids = {command.name: command.id for command in fetched}
        return self._ids

    @app_commands.command(name="help", description="What this bot does and the commands it offers")
    async def help(self, interaction: Interaction) -> None:
        permissions = interaction.permissions
        admin = interaction.guild_id is not None and (permissions.manage_guild or permissions.administrator)
        language = i18n.language_of(interaction.locale)
        text = help_text(self.bot.tree, admin=admin, ids=await self._command_ids(), language=language)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(General(bot))
