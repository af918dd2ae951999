"""Small text helpers shared by the Discord layer, the engine and the CLI."""

from __future__ import annotations

PROMPT_PREVIEW_CHARS = 200


def shorten(text: str, limit: int = PROMPT_PREVIEW_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plural(count: int, word: str = "image") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """'45 seconds', '30 minutes', '1 hour 5 minutes'."""
    if seconds < 59.5:
        return plural(round(seconds), "second")
    hours, minutes = divmod(round(seconds / 60), 60)
    if not hours:
        return plural(minutes, "minute")
    return plural(hours, "hour") + (f" {plural(minutes, 'minute')}" if minutes else "")
