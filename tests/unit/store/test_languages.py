"""The language each guild's admins chose, on both databases: set, changed, forgotten, kept beside other settings."""

from __future__ import annotations

import sqlite3

import pytest

from bot.store.errors import StorageError
from bot.store.languages import LanguageStore
from bot.store.money import MoneyStore
from tests.fixtures.storage import GUILD_ID

OTHER_GUILD = GUILD_ID + 1


async def test_a_guild_chooses_changes_and_forgets_its_language(storage) -> None:
    languages = LanguageStore(storage)
    assert await languages.languages() == {}

    await MoneyStore(storage).set_alert_channel(GUILD_ID, 77)  # the guild's row exists already
    await languages.set_language(GUILD_ID, "de")
    await languages.set_language(OTHER_GUILD, "es")
    await languages.set_language(GUILD_ID, "fr")
    assert await languages.languages() == {GUILD_ID: "fr", OTHER_GUILD: "es"}
    assert await MoneyStore(storage).alert_channel(GUILD_ID) == 77  # other settings stay

    await languages.set_language(OTHER_GUILD, None)
    assert await languages.languages() == {GUILD_ID: "fr"}


async def test_a_language_code_is_checked_by_the_database(storage) -> None:
    with pytest.raises((sqlite3.IntegrityError, StorageError)):
        await LanguageStore(storage).set_language(GUILD_ID, "x")
