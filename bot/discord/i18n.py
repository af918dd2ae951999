"""The bot's languages: one gettext catalog (`locales/<language>/<domain>.po`) per language and domain.

English is the source language: the texts in the code are the message ids, so English needs no catalog. The
`.po` files are compiled in memory with Babel when first used; no compiled `.mo` files are kept.

Texts the bot writes are made with `t` and `tn` (whole sentences with named placeholders, so a translation can
reorder them; `tn` picks the language's plural form) and said in a language with `translate`. Numbers take the
language's format.
"""

from __future__ import annotations

import functools
import gettext
import io
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple, Union

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

from bot.domain.money import MICROS_PER_USD

LOCALES_DIR = Path(__file__).parent / "locales"
SOURCE_LANGUAGE = "en"
LANGUAGES = ("de", "es", "fr", "it")  # the translated ones; a new language is a folder here plus its name in this list
DOMAINS = ("commands", "messages")
MESSAGES = "messages"
COMMANDS = "commands"


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
    for language in (SOURCE_LANGUAGE, *LANGUAGES):
        format_decimal(1, locale=language)  # loads Babel's number formats for the language
        for domain in DOMAINS:
            translations(language, domain)


class Usd(NamedTuple):
    """An amount of US dollars in a text, shown in the language's currency format ("$1,234.50", "1.234,50 $")."""

    micros: int


class Name(NamedTuple):
    """A command's, option's or choice's name in a text, as Discord shows it in the reader's language."""

    context: str  # "command", "option" or "choice", as in the commands catalog
    name: str


def command(name: str) -> Name:
    return Name("command", name)


def option(name: str) -> Name:
    return Name("option", name)


Value = Union[str, int, Usd, Name, "Text"]


class _Sentence(NamedTuple):
    singular: str
    plural: str | None
    number: int
    values: tuple[tuple[str, Value], ...]


class Text(str):
    """A text the bot writes: reads as its English wording, and `in_language` says it in another language."""

    sentences: tuple[_Sentence, ...]
    separator: str

    def __new__(cls, sentences: tuple[_Sentence, ...], separator: str = " ") -> Text:
        text = super().__new__(cls, separator.join(_say(sentence, SOURCE_LANGUAGE) for sentence in sentences))
        text.sentences, text.separator = sentences, separator
        return text

    def in_language(self, language: str) -> str:
        if language == SOURCE_LANGUAGE:
            return str.__str__(self)  # said in English when it was made
        return self.separator.join(_say(sentence, language) for sentence in self.sentences)


def t(message: str, **values: Value) -> Text:
    """One sentence (or a few that belong together); `{name}` placeholders take `values`."""
    return Text((_Sentence(message, None, 0, tuple(values.items())),))


def tn(singular: str, plural: str, count: int, **values: Value) -> Text:
    """Like `t`, in the plural form the language uses for `count` (`{count}` in the text shows it)."""
    return Text((_Sentence(singular, plural, count, (("count", count), *values.items())),))


def join(*texts: Text, separator: str = " ") -> Text:
    """Whole sentences one after another (never parts of one sentence: a translation could not reorder them)."""
    return Text(tuple(sentence for text in texts for sentence in text.sentences), separator)


def translate(text: str, locale: object) -> str:
    """`text` in the shipped language for a Discord locale (English if the bot lacks it); plain strings stay."""
    return translate_to(text, language_of(locale))


def translate_to(text: str, language: str) -> str:
    """`text` in a shipped language (or English); plain strings stay."""
    return text.in_language(language) if isinstance(text, Text) else text


def _say(sentence: _Sentence, language: str) -> str:
    catalog = translations(language, MESSAGES)
    if sentence.plural is None:
        template = catalog.gettext(sentence.singular)
    else:
        template = catalog.ngettext(sentence.singular, sentence.plural, sentence.number)
    return template.format_map({name: _value(value, language) for name, value in sentence.values})


def _value(value: Value, language: str) -> str:
    if isinstance(value, Text):
        return value.in_language(language)
    if isinstance(value, Name):
        return translations(language, COMMANDS).pgettext(value.context, value.name)
    if isinstance(value, Usd):
        amount = Decimal(value.micros) / MICROS_PER_USD
        return str(format_currency(amount, "USD", locale=language, decimal_quantization=False))
    if isinstance(value, int) and not isinstance(value, bool):
        return _number(value, language)
    return str(value)


@functools.lru_cache(maxsize=4096)
def _number(value: int, language: str) -> str:
    """A whole number in the language's format (Babel parses the locale on every call: the small numbers the
    bot says again and again, positions and counts, are kept)."""
    return str(format_decimal(value, locale=language))
