"""Localized names and descriptions of the slash commands, their options and choices (Discord shows each member
the ones of their client's language)."""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Location

from bot.discord import i18n

DOMAIN = "commands"

# The catalog's msgctxt per kind of name, so that a word can be translated differently as a command and as an
# option; descriptions need none.
NAME_CONTEXTS = {
    Location.command_name: "command",
    Location.group_name: "command",
    Location.parameter_name: "option",
    Location.choice_name: "choice",
}


class CatalogTranslator(app_commands.Translator):
    async def load(self) -> None:
        await asyncio.to_thread(i18n.load_all)

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        language = i18n.language_of(locale)
        if language == i18n.SOURCE_LANGUAGE:
            return None
        catalog = i18n.translations(language, DOMAIN)
        name_context = NAME_CONTEXTS.get(context.location)
        if name_context is None:
            return catalog.gettext(string.message)
        return catalog.pgettext(name_context, string.message)
