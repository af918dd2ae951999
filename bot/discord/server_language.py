"""The language of a server's public messages (status messages, captions, delivery notes, alerts).

The one its admins chose with `/quota language`, else the server's own (Discord's guild locale, set in a Community
server's settings); English where the bot lacks that language. The choices are kept in memory (one entry per
server that made one), read from the database at start.
"""

from __future__ import annotations

import discord
from babel import Locale

from bot.discord import i18n
from bot.discord.i18n import Text, t
from bot.store.languages import LanguageStore

SERVER_DEFAULT = "server"  # the /quota language choice that follows the server's own language
CHOICES = (SERVER_DEFAULT, i18n.SOURCE_LANGUAGE, *i18n.LANGUAGES)
# Each language by its own name, as a speaker looks for it ("Deutsch", "Español").
NAMES = {code: str(Locale.parse(code).get_display_name(code)).capitalize() for code in CHOICES[1:]}
CHOICE_NAMES = {SERVER_DEFAULT: "Server default", **NAMES}  # the /quota language choices (translated by Discord)


def describe(languages: ServerLanguages, guild_id: int) -> Text:
    """What `/quota show` and `/quota language` say about a server's language."""
    chosen = languages.chosen(guild_id)
    if chosen is not None:
        return t("{language} (chosen by the admins)", language=NAMES.get(chosen, chosen))
    own = languages.own(guild_id)
    return t("the server's own: {language}", language=NAMES[own])


class ServerLanguages:
    def __init__(self, bot: discord.Client, store: LanguageStore | None = None) -> None:
        self._bot = bot
        self._store = store
        self._chosen: dict[int, str] = {}

    async def load(self) -> None:
        if self._store is not None:
            self._chosen = await self._store.languages()

    def chosen(self, guild_id: int) -> str | None:
        """The language the admins chose (None: the server's own)."""
        return self._chosen.get(guild_id)

    def own(self, guild_id: int) -> str:
        """The server's own language as Discord gives it (English when the bot lacks it)."""
        guild = self._bot.get_guild(guild_id)
        return i18n.language_of(guild.preferred_locale if guild is not None else None)

    def of(self, guild_id: int) -> str:
        chosen = self._chosen.get(guild_id)
        return i18n.language_of(chosen) if chosen else self.own(guild_id)

    async def choose(self, guild_id: int, choice: str) -> None:
        """`choice`: one of CHOICES; SERVER_DEFAULT forgets the admins' choice."""
        if choice not in CHOICES:
            raise ValueError(f"unknown language choice {choice!r}")
        language = None if choice == SERVER_DEFAULT else choice
        if self._store is not None:
            await self._store.set_language(guild_id, language)
        if language is None:
            self._chosen.pop(guild_id, None)
        else:
            self._chosen[guild_id] = language
