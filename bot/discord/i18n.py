"""The bot's languages: one gettext catalog (`locales/<language>/<domain>.po`) per language and domain.

English is the source language: the texts in the code are the message ids, so English needs no catalog. The
`.po` files are compiled in memory with Babel when first used; no compiled `.mo` files are kept.
"""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
SOURCE_LANGUAGE = "en"
LANGUAGES = ("de", "es", "fr", "it")  # the translated ones; a new language is a folder here plus its name in this list
DOMAINS = ("commands",)


def language_of(locale: object) -> str:
    """The shipped language for a Discord locale (`de`, `es-ES`, `es-419` → `es`); English when the bot lacks it."""
    language = str(getattr(locale, "value", locale) or "").split("-")[0].lower()
    return language if language in LANGUAGES else SOURCE_LANGUAGE


def catalog_path(language: str, domain: str) -> Path:
    return LOCALES_DIR / language / f"{domain}.po"


@functools.cache
def translations(language: str, domain: str) -> gettext.NullTranslations:
    """The compiled catalog (reads a file the first time: call `load_all` off the event loop at start-up)."""
    if language not in LANGUAGES:
        return gettext.NullTranslations()
    with catalog_path(language, domain).open("rb") as file:
        catalog = read_po(file, locale=language, domain=domain)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def load_all() -> None:
    """Compile every catalog now, so that no later lookup reads a file."""
    for language in LANGUAGES:
        for domain in DOMAINS:
            translations(language, domain)
