"""The prompt filter: words or patterns a server does not allow in prompts.

A term is one or more words; it matches whole words, case-insensitively, ignoring accents. Inside a
word, `*` stands for any run of letters or digits ("cat*" matches "cat", "cats" and "catapult"). That
is the whole syntax: terms are matched by the small wildcard matcher below, never handed to `re`, so
no term can make a check slow. Apostrophes and hyphens separate words, in terms and prompts alike, so
"self-harm" and "self harm" are the same term.

Refused prompts are counted per user and day, for `/quota show`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.quota_policy import day_number
from bot.domain.seedream import Invalid, ValidationError
from bot.store.database import Storage

MAX_TERMS = 100  # per server
MAX_TERM_CHARS = 60
MAX_TERM_WORDS = 5
MIN_LITERAL_CHARS = 2

_TERM_CHARS = re.compile(r"^[\w\s*'’-]+$")
_TERM_WORD = re.compile(r"[\w*]+")
_PROMPT_WORD = re.compile(r"\w+")
_STARS = re.compile(r"\*{2,}")


class BadTerm(StrEnum):
    """Why a term cannot be used."""

    EMPTY = "empty"
    TOO_LONG = "too_long"  # maximum
    BAD_CHARACTERS = "bad_characters"
    NO_LETTERS = "no_letters"
    TOO_MANY_WORDS = "too_many_words"  # maximum
    BARE_STAR = "bare_star"
    TOO_SHORT = "too_short"  # minimum
    LIST_FULL = "list_full"  # maximum


class TermError(ValueError):
    """A term cannot be used: `code` says why and `values` gives the numbers, for the Discord side to word; the
    message is the English wording."""

    def __init__(self, code: BadTerm, message: str, **values: int) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


class PromptBlocked(ValidationError):
    """The prompt contains a blocked term (`matched`, as found in the prompt); the Discord layer words it."""

    def __init__(self, matched: str) -> None:
        self.matched = matched
        super().__init__(Invalid.PROMPT_BLOCKED, f"blocked term {matched!r}", matched=matched)


@dataclass(frozen=True)
class BlockedTerm:
    term: str
    added_by: int
    added_at: float


def _fold(text: str) -> str:
    """Lower case without accents, so "Café" and "cafe" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def parse_term(text: str) -> str:
    """The canonical form of a term (folded, one space between words); raises `TermError` if unusable."""
    if not isinstance(text, str) or not text.strip():
        raise TermError(BadTerm.EMPTY, "The term is empty: give a word or a few words to block.")
    if len(text) > MAX_TERM_CHARS:
        raise TermError(
            BadTerm.TOO_LONG, f"A term can be at most {MAX_TERM_CHARS} characters long.", maximum=MAX_TERM_CHARS
        )
    if not _TERM_CHARS.match(text):
        raise TermError(
            BadTerm.BAD_CHARACTERS,
            "A term can only contain letters, digits, spaces, apostrophes, hyphens and `*` "
            "(which stands for any letters, e.g. `cat*`).",
        )
    words = [_STARS.sub("*", word) for word in _TERM_WORD.findall(_fold(text))]
    if not words:
        raise TermError(BadTerm.NO_LETTERS, "The term has no letters or digits.")
    if len(words) > MAX_TERM_WORDS:
        raise TermError(
            BadTerm.TOO_MANY_WORDS, f"A term can have at most {MAX_TERM_WORDS} words.", maximum=MAX_TERM_WORDS
        )
    if any(word.strip("*") == "" for word in words):
        raise TermError(
            BadTerm.BARE_STAR, "Every word of a term needs a letter or digit: `*` alone would match any word."
        )
    if sum(len(word.replace("*", "")) for word in words) < MIN_LITERAL_CHARS:
        raise TermError(
            BadTerm.TOO_SHORT,
            f"A term needs at least {MIN_LITERAL_CHARS} letters or digits.",
            minimum=MIN_LITERAL_CHARS,
        )
    term = " ".join(words)
    if len(term) > MAX_TERM_CHARS:  # some characters spell out longer once folded (ligatures)
        raise TermError(
            BadTerm.TOO_LONG, f"A term can be at most {MAX_TERM_CHARS} characters long.", maximum=MAX_TERM_CHARS
        )
    return term


def _word_matches(pattern: str, word: str) -> bool:
    """Whether `word` matches `pattern`, where `*` stands for any run of characters (time linear in both)."""
    if "*" not in pattern:
        return pattern == word
    first, *middle, last = pattern.split("*")
    if len(word) < len(first) + len(last) or not word.startswith(first) or not word.endswith(last):
        return False
    position, end = len(first), len(word) - len(last)
    for part in middle:
        # The leftmost place of each part leaves the most room for the parts after it.
        found = word.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def prompt_words(prompt: str) -> list[str]:
    return _PROMPT_WORD.findall(_fold(prompt))


def find_blocked(prompt: str | Sequence[str], terms: Iterable[str]) -> str | None:
    """The words of `prompt` matching the first term that matches, or None. Terms are canonical (`parse_term`)."""
    words = prompt_words(prompt) if isinstance(prompt, str) else list(prompt)
    for term in terms:
        patterns = term.split(" ")
        width = len(patterns)
        for start in range(len(words) - width + 1):
            if all(_word_matches(p, w) for p, w in zip(patterns, words[start : start + width], strict=True)):
                return " ".join(words[start : start + width])
    return None


class PromptFilter:
    """Each server's blocked terms, the check `JobService.create` runs, and the count of refused prompts."""

    def __init__(self, storage: Storage, *, clock: Callable[[], float] | None = None) -> None:
        self._storage = storage
        self._clock: Callable[[], float] = clock or storage.clock

    async def terms(self, guild_id: int) -> list[BlockedTerm]:
        rows = await self._storage.fetchall(
            "SELECT term, added_by, added_at FROM blocked_terms WHERE guild_id = ? ORDER BY term", (guild_id,)
        )
        return [BlockedTerm(row["term"], int(row["added_by"]), float(row["added_at"])) for row in rows]

    async def add(self, guild_id: int, text: str, *, added_by: int) -> tuple[str, bool]:
        """Block a term; returns (its canonical form, whether it is new). Raises `TermError`."""
        term = parse_term(text)
        async with self._storage.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM blocked_terms WHERE guild_id = ? AND term = ?", (guild_id, term)):
                return term, False
            count = await tx.fetchone("SELECT count(*) FROM blocked_terms WHERE guild_id = ?", (guild_id,))
            if count is not None and count[0] >= MAX_TERMS:
                raise TermError(
                    BadTerm.LIST_FULL,
                    f"This server already blocks {MAX_TERMS} terms, the most it can. Remove one first.",
                    maximum=MAX_TERMS,
                )
            await tx.fetchall(
                "INSERT INTO blocked_terms (guild_id, term, added_by, added_at) VALUES (?, ?, ?, ?)",
                (guild_id, term, added_by, self._clock()),
            )
        return term, True

    async def remove(self, guild_id: int, text: str) -> tuple[str, bool]:
        """Unblock a term; returns (its canonical form, whether it was blocked). Raises `TermError`."""
        term = parse_term(text)
        rows = await self._storage.write(
            "DELETE FROM blocked_terms WHERE guild_id = ? AND term = ? RETURNING 1", (guild_id, term)
        )
        return term, bool(rows)

    async def check(self, guild_id: int, user_id: int, prompt: str) -> None:
        """Raise `PromptBlocked` (and count it) if the prompt contains one of the server's blocked terms."""
        rows = await self._storage.fetchall("SELECT term FROM blocked_terms WHERE guild_id = ?", (guild_id,))
        if not rows:
            return
        matched = find_blocked(prompt, (row["term"] for row in rows))
        if matched is None:
            return
        await self._storage.write(
            """INSERT INTO blocked_prompt_days (guild_id, user_id, day, count) VALUES (?, ?, ?, 1)
               ON CONFLICT (guild_id, user_id, day) DO UPDATE SET count = blocked_prompt_days.count + 1""",
            (guild_id, user_id, day_number(self._clock())),
        )
        raise PromptBlocked(matched)

    async def blocked_count(self, guild_id: int, *, since: float, user_id: int | None = None) -> int:
        """How many prompts were refused from the day of `since` on (for one user, or the whole server)."""
        sql = "SELECT coalesce(sum(count), 0) FROM blocked_prompt_days WHERE guild_id = ? AND day >= ?"
        parameters: tuple[int, ...] = (guild_id, day_number(since))
        if user_id is not None:
            sql += " AND user_id = ?"
            parameters += (user_id,)
        rows = await self._storage.fetchall(sql, parameters)
        return int(rows[0][0])
