"""The bot's message texts: every text in the code is in every language's catalog, plurals and numbers follow the
language, and a member's locale picks the language."""

from __future__ import annotations

import re
from pathlib import Path

import discord
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.discord import i18n, quota_messages
from bot.discord.i18n import join, t, tn, translate

ROOT = Path(__file__).resolve().parents[3]
KEYWORDS = {"t": None, "tn": (1, 2)}
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def texts_in_code() -> dict[str, str | None]:
    """msgid → msgid_plural (None for a plain text) of every `t(...)` and `tn(...)` call, like `pybabel extract`."""
    found: dict[str, str | None] = {}
    for folder in ("bot", "cogs"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, tuple):
                found[message[0]] = message[1]
            else:
                found[message] = None
    return found


def test_the_code_uses_catalog_texts():
    texts = texts_in_code()
    assert "It resets {time}." in texts
    assert texts["You have {count} image left {when}, and this set needs {wanted}. Please ask for {count} or fewer."]


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_text_is_translated_with_the_same_placeholders_and_no_translation_is_stale(language):
    with i18n.catalog_path(language, i18n.MESSAGES).open("rb") as file:
        catalog = read_po(file, locale=language)
    entries = {
        message.id[0] if isinstance(message.id, tuple) else message.id: message for message in catalog if message.id
    }
    texts = texts_in_code()

    assert sorted(set(texts) - set(entries)) == [], "untranslated"
    assert sorted(set(entries) - set(texts)) == [], "texts the code no longer uses"
    for msgid, plural in texts.items():
        entry = entries[msgid]
        if plural is None:
            assert isinstance(entry.string, str) and entry.string, msgid
            forms = [entry.string]
        else:
            assert isinstance(entry.id, tuple) and entry.id[1] == plural, msgid
            forms = list(entry.string)
            assert len(forms) == catalog.num_plurals and all(forms), msgid
        expected = set(PLACEHOLDER.findall(msgid)) | set(PLACEHOLDER.findall(plural or ""))
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) == expected, (msgid, form)


def test_plurals_follow_each_language():
    one_image = tn("{count} image is left.", "{count} images are left.", 0)
    assert str(one_image) == "0 images are left."  # English: 0 is plural
    # A text missing from the catalogs stays English; a known one takes the language's plural rule.
    held = "({count} images are held by sets still in progress; any they do not deliver come back.)"
    singular = "({count} image is held by a set still in progress; if it is not delivered, it comes back.)"
    assert translate(tn(singular, held, 0), "fr").startswith("(0 image est réservée")  # French: 0 is singular
    assert translate(tn(singular, held, 0), "de").startswith("(0 Bilder sind")
    assert translate(tn(singular, held, 1), "de").startswith("(1 Bild ist")


def test_numbers_take_the_languages_format():
    text = quota_messages.over_budget(5000, 1200, 1500, "month", 1_800_000_000)
    assert str(text) == (
        "This server's image budget has only 1,200 images left this month, and this set needs 1,500. "
        "Please ask for 1,200 or fewer. It resets <t:1800000000:R>."
    )
    assert translate(text, discord.Locale.german) == (
        "Das Bildbudget dieses Servers hat diesen Monat nur noch 1.200 Bilder übrig, und diese Serie braucht 1.500. "
        "Bitte wähle höchstens 1.200. Es startet <t:1800000000:R> neu."
    )


def test_a_language_the_bot_lacks_reads_english_and_plain_strings_stay():
    text = join(t("today"), quota_messages.OUT_OF_CREDIT)
    assert translate(text, discord.Locale.japanese) == str(text)
    assert translate(text, "it").startswith("oggi L'account RunComfy")
    assert translate("plain", "de") == "plain"
