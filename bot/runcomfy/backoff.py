"""The one backoff rule of the bot: a pause that doubles after each failure, up to a cap.

It lives with the RunComfy client (which stands alone) so that every layer can use it: the client's retries,
the tracker, polling, posting images and editing status messages.
"""

from __future__ import annotations

MAX_DOUBLINGS = 60  # 2**60 already exceeds every cap; more would only overflow


def doubling(base: float, cap: float, doublings: int) -> float:
    """`base` doubled `doublings` times (none for 0 or less), at most `cap`."""
    return min(cap, base * 2.0 ** min(max(doublings, 0), MAX_DOUBLINGS))
