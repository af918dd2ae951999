"""What the fake Discord does with message nonces and when reading a channel's history, as Discord does.

- `nonce` (up to 25 characters) comes back in the created message. With `enforce_nonce: true`, a second message
  from the same author with the same nonce within a few minutes is not created: the first one is returned.
  Messages read back later (GET) carry no nonce.
- `GET /channels/{id}/messages` takes `limit` (1-100, default 50) and `before` or `after` (message ids); it answers
  newest first: the newest `limit` messages before `before` (or of all), or the oldest `limit` messages after
  `after`. Ephemeral messages are not part of a channel's history.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes import discord_payloads as p

MAX_NONCE_CHARS = 25
NONCE_WINDOW_SECONDS = 180.0  # "a few minutes"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class NonceBook:
    def __init__(self) -> None:
        self.window = NONCE_WINDOW_SECONDS
        self._seen: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}  # (author id, nonce) -> (when, message)

    def existing(self, author_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The message an enforced nonce points to, if it was created within the window."""
        nonce = payload.get("nonce")
        if nonce is None or not payload.get("enforce_nonce"):
            return None
        seen = self._seen.get((author_id, str(nonce)))
        if seen is None or time.monotonic() - seen[0] > self.window:
            return None
        return {**seen[1], "nonce": str(nonce)}

    def remember(self, author_id: str, payload: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        """Note the nonce of a created message; returns the message as the create call answers it."""
        nonce = payload.get("nonce")
        if nonce is None:
            return message
        self._seen[(author_id, str(nonce))] = (time.monotonic(), message)
        return {**message, "nonce": str(nonce)}


def nonce_problem(payload: dict[str, Any]) -> str | None:
    nonce = payload.get("nonce")
    if nonce is not None and len(str(nonce)) > MAX_NONCE_CHARS:
        return f"Must be {MAX_NONCE_CHARS} or fewer in length."
    return None


def history_page(messages: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """One page of a channel's history (`messages` oldest first), newest first, as Discord answers it."""
    limit = max(1, min(MAX_LIMIT, int(query.get("limit", DEFAULT_LIMIT))))
    visible = [m for m in messages if not m["flags"] & p.EPHEMERAL]
    if "after" in query:
        after = int(query["after"])
        return list(reversed([m for m in visible if int(m["id"]) > after][:limit]))
    if "before" in query:
        before = int(query["before"])
        visible = [m for m in visible if int(m["id"]) < before]
    return list(reversed(visible[-limit:]))
