"""Start-up's objects moved out of the garbage collector's way, once the bot is ready.

A full (generation 2) collection walks every live object. In the bot most of them are built at start-up and
kept for the life of the process: modules, discord.py's state, the translation catalogs. Each full collection
then paused the event loop for 7-10 ms (measured in `bench/quota.py`'s process), and that pause landed in the
latency of whatever command was waiting. `gc.freeze` moves the objects alive at that moment to a permanent
generation that collections skip; objects made later are collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect once, then freeze what is left; the number of objects frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("%d start-up objects frozen out of garbage collection", frozen)
    return frozen
