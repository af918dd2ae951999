"""The slash commands' translations: complete catalogs, names Discord accepts, and a sync when they change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
from babel.messages.pofile import read_po
from discord import app_commands

from bot.discord import i18n
from bot.discord.bot import SeedreamBot
from bot.discord.sync import commands_hash
from bot.discord.translator import NAME_CONTEXTS, CatalogTranslator
from bot.settings import Settings

# Discord's rule for command and option names, also localized ones (they must be lowercase as well).
NAME = re.compile(r"^[-_\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@pytest.fixture
async def tree(tmp_path: Path) -> app_commands.CommandTree[Any]:
    """The bot's real command tree, from its cogs, without connecting anywhere."""
    settings = Settings(discord_token="unused", runcomfy_api_token="unused", database_path=tmp_path / "db")
    bot = SeedreamBot(settings)
    for extension in bot.EXTENSIONS:
        await bot.load_extension(extension)
    return bot.tree


class Recorder(app_commands.Translator):
    """Records every text the tree asks to translate, with the catalog context it is looked up in."""

    def __init__(self) -> None:
        self.asked: set[tuple[str | None, str]] = set()

    async def translate(self, string, locale, context) -> str | None:
        self.asked.add((NAME_CONTEXTS.get(context.location), string.message))
        return None


def catalog_ids(language: str) -> dict[tuple[str | None, str], str]:
    with i18n.catalog_path(language, "commands").open("rb") as file:
        catalog = read_po(file, locale=language)
    return {(message.context, message.id): message.string for message in catalog if message.id}


async def test_every_command_text_is_translated_in_every_language_and_no_translation_is_stale(tree):
    recorder = Recorder()
    for command in tree.get_commands():
        await command.get_translated_payload(tree, recorder)
    assert len(recorder.asked) > 50

    for language in i18n.LANGUAGES:
        catalog = catalog_ids(language)
        missing = sorted((key for key in recorder.asked if not catalog.get(key)), key=str)
        assert missing == [], f"{language}: untranslated {missing}"
        assert sorted(set(catalog) - recorder.asked, key=str) == [], f"{language}: texts no command uses"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_translations_keep_the_placeholders_of_the_english_text(language):
    for (_context, message_id), text in catalog_ids(language).items():
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(message_id)), (language, message_id)


def named_children(payload: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Each list of siblings whose names must differ: the subcommands or options of a command."""
    options = [option for option in payload.get("options", []) if "name" in option]
    if options:
        yield options
    for option in options:
        if option.get("type") in (discord.AppCommandOptionType.subcommand.value,
                                  discord.AppCommandOptionType.subcommand_group.value):  # fmt: skip
            yield from named_children(option)


async def test_localized_names_follow_discords_rules_and_are_unique_among_siblings(tree):
    payloads = [await command.get_translated_payload(tree, CatalogTranslator()) for command in tree.get_commands()]
    locales = {"de", "it", "fr", "es-ES", "es-419"}
    for locale in locales:
        top = [payload["name_localizations"][locale] for payload in payloads]
        assert len(set(top)) == len(top), locale

    def check(entry: dict[str, Any]) -> None:
        assert set(entry["name_localizations"]) == locales, entry["name"]
        if "description" in entry:
            assert set(entry["description_localizations"]) == locales, entry["name"]
        for locale, name in entry["name_localizations"].items():
            assert NAME.match(name) and name == name.lower(), (locale, name)
        for description in entry["description_localizations"].values():
            assert 1 <= len(description) <= 100, description
        for choice in entry.get("choices", []):
            assert set(choice["name_localizations"]) == locales, choice["name"]
            assert all(1 <= len(name) <= 100 for name in choice["name_localizations"].values())

    for payload in payloads:
        check(payload)
        for siblings in named_children(payload):
            for sibling in siblings:
                check(sibling)
            for locale in locales:
                names = [sibling["name_localizations"][locale] for sibling in siblings]
                assert len(set(names)) == len(names), (payload["name"], locale, names)


class Fixed(app_commands.Translator):
    def __init__(self, word: str) -> None:
        self.word = word

    async def translate(self, string, locale, context) -> str | None:
        return self.word if locale is discord.Locale.german else None


async def test_the_sync_hash_changes_when_a_translation_changes(tree):
    untranslated = await commands_hash(tree, dev_guild_id=None)
    await tree.set_translator(Fixed("eins"))
    one = await commands_hash(tree, dev_guild_id=None)
    await tree.set_translator(Fixed("zwei"))
    two = await commands_hash(tree, dev_guild_id=None)

    assert len({untranslated, one, two}) == 3
    assert await commands_hash(tree, dev_guild_id=None) == two


def test_discord_locales_map_to_the_shipped_languages_else_english():
    assert i18n.language_of(discord.Locale.german) == "de"
    assert i18n.language_of(discord.Locale.spain_spanish) == "es"
    assert i18n.language_of(discord.Locale.latin_american_spanish) == "es"
    assert i18n.language_of("it") == "it" and i18n.language_of("fr") == "fr"
    assert i18n.language_of(discord.Locale.brazil_portuguese) == "en"
    assert i18n.language_of(discord.Locale.american_english) == "en"
    assert i18n.language_of(None) == "en"
