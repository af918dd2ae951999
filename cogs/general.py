"""General commands: `/help`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

MESSAGE_LIMIT = 2000

ABOUT = (
    "**Seedream bot** turns a text prompt into a set of 1 to 15 related images with Seedream 4.0, generated "
    "through RunComfy. Start one with `/imagine`; its reply shows where the job stands and the images follow. "
    "**Cancel** stops a job still waiting in the queue; **Again** repeats a finished one with a new seed. "
    "Each server gives its members an image quota per period: a job reserves its images, and what it does not "
    "deliver goes back to you."
)


def _for_admins(command: app_commands.Command | app_commands.Group) -> bool:
    permissions = command.default_permissions
    return permissions is not None and (permissions.manage_guild or permissions.administrator)


def command_lines(tree: app_commands.CommandTree, *, admins: bool = False) -> list[str]:
    """One line per command (and per subcommand), sorted by name: the members' ones, or the admins' ones."""
    lines: list[str] = []

    def walk(command: app_commands.Command | app_commands.Group) -> None:
        if isinstance(command, app_commands.Group):
            for child in sorted(command.commands, key=lambda c: c.name):
                walk(child)
        else:
            lines.append(f"`/{command.qualified_name}` — {command.description}")

    for command in sorted(tree.get_commands(type=discord.AppCommandType.chat_input), key=lambda c: c.name):
        if _for_admins(command) == admins:
            walk(command)
    return lines


def help_text(tree: app_commands.CommandTree) -> str:
    text = ABOUT + "\n\n**Commands**\n" + "\n".join(command_lines(tree))
    admin_lines = command_lines(tree, admins=True)
    if admin_lines:
        text += "\n\n**For admins** (Manage Server)\n" + "\n".join(admin_lines)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


class General(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What this bot does and the commands it offers")
    async def help(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(help_text(self.bot.tree), ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(General(bot))
