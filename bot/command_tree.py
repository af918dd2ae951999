"""The command tree: refuses commands while shutting down and turns errors into polite answers."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)

RESTARTING = "The bot is restarting. Please try again in a minute."
GENERIC_ERROR = "Something went wrong on my side. Please try again; if it keeps happening, tell a server admin."


class SeedreamTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if getattr(self.client, "accepting_commands", True):
            return True
        await interaction.response.send_message(RESTARTING, ephemeral=True)
        return False

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure):
            text = _check_failure_text(error)
        else:
            original = getattr(error, "original", error)
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed in guild %s for user %s",
                command,
                interaction.guild_id,
                interaction.user.id,
                exc_info=original,
            )
            text = GENERIC_ERROR
        await answer_privately(interaction, text)


def _check_failure_text(error: app_commands.CheckFailure) -> str:
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission to use this command."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in a server, not in direct messages."
    return str(error) or "You can't use this command here."


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, whether or not the interaction was already acknowledged."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell user %s about an error (interaction gone)", interaction.user.id)
