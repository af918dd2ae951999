"""The command tree: refuses commands while shutting down and turns errors into polite answers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.discord import i18n
from bot.discord.i18n import t, tn, translate
from bot.store.database import storage_failure

if TYPE_CHECKING:
    from bot.discord.bot import SeedreamBot

log = logging.getLogger(__name__)

RESTARTING = t("The bot is restarting. Please try again in a minute.")
GENERIC_ERROR = t("Something went wrong on my side. Please try again; if it keeps happening, tell a server admin.")
STORAGE_UNAVAILABLE = t("I can't save anything right now (my storage is failing), so nothing was reserved; try later.")
SERVER_ONLY = t("This command works in a server, not in direct messages.")


def guild_of(interaction: discord.Interaction[Any]) -> int:
    """The server a command came from; guild_only commands are only sent from servers, so None is refused."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def channel_of(interaction: discord.Interaction[Any]) -> int:
    """The channel a server's command or button came from (always sent for those)."""
    if interaction.channel_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.channel_id


class SeedreamTree(app_commands.CommandTree["SeedreamBot"]):
    async def interaction_check(self, interaction: discord.Interaction[SeedreamBot]) -> bool:
        if self.client.accepting_commands:
            return True
        await interaction.response.send_message(translate(RESTARTING, interaction.locale), ephemeral=True)
        return False

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure):
            text = _check_failure_text(error)
        elif isinstance(error, app_commands.CommandSignatureMismatch):
            # A payload not made by Discord's command picker, or commands still being updated.
            log.warning("/%s called with options that do not match its definition", error.command.qualified_name)
            text = _mismatch_text(interaction, error.command, i18n.language_of(interaction.locale))
        else:
            original = getattr(error, "original", error)
            command = interaction.command.qualified_name if interaction.command else "?"
            cause = storage_failure(original)
            if cause is not None:
                log.error(
                    "command /%s failed in guild %s for user %s: %s", command, interaction.guild_id,
                    interaction.user.id, cause,
                )  # fmt: skip
                await answer_privately(interaction, STORAGE_UNAVAILABLE, replace_deferral=True)
                return
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
        return t("You need the Manage Server permission to use this command.")
    if isinstance(error, app_commands.NoPrivateMessage):
        return SERVER_ONLY
    return t("You can't use this command here.")


def _mismatch_text(interaction: discord.Interaction, command: object, language: str) -> str:
    """Names the command and its missing options as the member's Discord shows them."""
    given = set(vars(interaction.namespace))
    names = i18n.translations(language, i18n.COMMANDS)
    missing = [
        f"`{names.pgettext('option', parameter.name)}`"
        for parameter in getattr(command, "parameters", [])
        if parameter.required and parameter.name not in given
    ]
    name = " ".join(names.pgettext("command", part) for part in getattr(command, "qualified_name", "?").split())
    if missing:
        return tn(
            "`/{command}` needs {options}. Please pick the command from Discord's list and fill it in.",
            "`/{command}` needs {options}. Please pick the command from Discord's list and fill them in.",
            len(missing),
            command=name,
            options=", ".join(missing),
        ).in_language(language)
    return t(
        "`/{command}` got options it does not know. Please pick the command from Discord's list and try again.",
        command=name,
    ).in_language(language)


async def answer_privately(interaction: discord.Interaction, text: str, *, replace_deferral: bool = False) -> None:
    """An ephemeral answer in the member's language, whether or not the interaction was already acknowledged.

    `replace_deferral`: delete a public "thinking…" response first, so the answer is not shown in its place.
    """
    text = translate(text, interaction.locale)
    try:
        if replace_deferral and interaction.response.is_done():
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("the deferred response was already gone")
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell user %s about an error (interaction gone)", interaction.user.id)
