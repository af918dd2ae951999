"""Masking secrets in any text: known secret values (and any piece of them) and token-shaped strings.

Lives with the RunComfy client, which masks what upstream sends back; the bot's logging uses it for every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"


def _mask_header(match: re.Match[str]) -> str:
    prefix, scheme = match.group(1), match.group(2)
    return f"{prefix}{scheme} {MASK}" if scheme else prefix + MASK


# (pattern, replacement, guard): a pattern runs only on a text containing its guard (None: on every text), as
# scanning a log line costs several microseconds a pattern and most lines hold none of these. Every match contains
# the guard; for a pattern that ignores case it is looked for in the lower-cased text, and has no i, k or s (which
# the pattern also matches as other characters: dotless ı, the Kelvin sign, long ſ).
_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], Any, str | None], ...] = (
    # An Authorization header however rendered: `Authorization: Bot x`, `'authorization': 'Bearer x'`.
    (re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)(?:(bearer|bot)\s+)?[^\s'",;}]+"""), _mask_header, "author"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK, "bearer"),
    # "Bot <token>" outside a header: only when what follows looks like a token, so "Bot ready" stays readable.
    (re.compile(r"\b(Bot)\s+[A-Za-z0-9._-]{20,}"), r"\1 " + MASK, "Bot"),
    # A Discord bot token anywhere: three base64url parts joined by dots.
    (re.compile(r"\b[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}\b"), MASK, None),
    # The password in a URL's user part: `postgresql://user:password@host`.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1" + MASK + "@", "://"),
    # Interaction and webhook tokens in URL paths.
    (re.compile(r"(/(?:webhooks|interactions)/[^/\s?#'\"]+/)[^/\s?#'\"]+"), r"\1" + MASK, None),
)

# With whether each pattern ignores case, worked out once: a RegexFlag test costs microseconds per text.
_GUARDED_PATTERNS = tuple((p, r, g, bool(p.flags & re.IGNORECASE)) for p, r, g in _TOKEN_PATTERNS)


# Any run of this many characters of a secret is masked too, so a token cut short or split still does not show.
SECRET_PIECE_CHARS = 16


class Redactor:
    """Replaces known secret values (and any 16-character piece of them) and token-shaped strings with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        n = SECRET_PIECE_CHARS
        self._pieces = frozenset(s[i : i + n] for s in self._secrets for i in range(len(s) - n + 1))
        # Every piece contains one of these aligned half-pieces: only where one occurs is a piece looked for.
        half = n // 2
        self._anchors = frozenset(
            s[i : i + half] for s in self._secrets if len(s) >= n for i in range(0, len(s) - half + 1, half)
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._pieces:
            text = self._mask_pieces(text)
        lower = text.lower()
        for pattern, replacement, guard, ignore_case in _GUARDED_PATTERNS:
            if guard is None or guard in (lower if ignore_case else text):
                text = pattern.sub(replacement, text)
                lower = text.lower()
        return text

    def _mask_pieces(self, text: str) -> str:
        n, half = SECRET_PIECE_CHARS, SECRET_PIECE_CHARS // 2
        starts: set[int] = set()
        for anchor in self._anchors:
            at = text.find(anchor)
            while at != -1:
                starts.update(i for i in range(max(0, at - half), at + 1) if text[i : i + n] in self._pieces)
                at = text.find(anchor, at + 1)
        if not starts:
            return text
        spans: list[list[int]] = []
        for start in sorted(starts):
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + n
            else:
                spans.append([start, start + n])
        for start, end in reversed(spans):
            text = text[:start] + MASK + text[end:]
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


# Attributes every LogRecord has; anything else on a record came from `extra=` and is rendered as context.
