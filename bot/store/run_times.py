"""How long RunComfy takes per image, learned from finished jobs, per mode and image size.

Kept in memory and in the database's `meta` table (key `run_time:<mode>:<image size>`, a small JSON
value), so a restart does not start from scratch: written after each of the first `SAVED_RUNS` runs of a
kind and the first run this process learns, then at most every `SAVE_INTERVAL` seconds (a restart loses at
most that much learning). A run is timed from the estimated start (between the last poll that saw the job
queued and the first that saw it running) to the estimated end (between the last poll that saw it running
and the one that saw it done); only runs whose start was seen are learned. Each time moves the estimate by
`ALPHA` of the difference (an exponential average), and the relative spread of runs around it is learned the
same way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

SECONDS_PER_IMAGE = 2.0  # Seedream 4.0 makes about one 2K image every 2 s
STANDARD_MODE_EXTRA = 5.0  # standard mode spends longer on the prompt first
PRIOR_SPREAD = 0.3  # until runs are learned, expect them within ±30 %
ALPHA = 0.3
SPREAD_FACTOR = 2.5  # the spread covers 2.5 times the mean relative deviation
NOISE_SECONDS = 0.6  # deviations below this come from the poll timing, not from RunComfy
SAVED_RUNS = 5
SAVE_INTERVAL = 30.0
_KEY = "run_time:{mode}:{size}"
_BOUNDS = (0.05, 600.0)  # seconds per image believed at all


class MetaStore(Protocol):
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class Estimate:
    seconds_per_image: float
    spread: float  # relative
    runs: int  # how many runs were learned


def _kind(options: Mapping[str, Any]) -> tuple[str, str]:
    return str(options.get("mode") or "fast"), str(options.get("aspect") or "default")


def _extra(mode: str) -> float:
    return STANDARD_MODE_EXTRA if mode == "standard" else 0.0


class RunTimes:
    """Expected run times. `expect` is synchronous (from memory); `learn` writes through to the store."""

    def __init__(self, store: MetaStore | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._saved_at: dict[tuple[str, str], float] = {}
        self._known: dict[tuple[str, str], Estimate] = {}
        self._loaded: set[tuple[str, str]] = set()

    async def load(self, options: Mapping[str, Any]) -> None:
        """Read the stored estimate for this kind of job once (later calls are free)."""
        kind = _kind(options)
        if kind in self._loaded or self._store is None:
            return
        self._loaded.add(kind)
        raw = await self._store.get_meta(_KEY.format(mode=kind[0], size=kind[1]))
        estimate = _parse(raw)
        if estimate is not None and kind not in self._known:
            self._known[kind] = estimate

    def estimate(self, options: Mapping[str, Any]) -> Estimate:
        return self._known.get(_kind(options)) or Estimate(SECONDS_PER_IMAGE, PRIOR_SPREAD, 0)

    def expect(self, options: Mapping[str, Any], images: int) -> tuple[float, float]:
        """(expected run seconds, relative spread) for a job with these options making `images` images."""
        mode, _ = _kind(options)
        estimate = self.estimate(options)
        return _extra(mode) + estimate.seconds_per_image * max(1, images), estimate.spread

    async def learn(self, options: Mapping[str, Any], images: int, seconds: float) -> Estimate | None:
        """Note a run of `seconds` that made `images` images; returns the new estimate (None if not believable)."""
        if images < 1 or not math.isfinite(seconds):
            return None
        mode, size = kind = _kind(options)
        per_image = (seconds - _extra(mode)) / images
        if not _BOUNDS[0] <= per_image <= _BOUNDS[1]:
            return None
        old = self.estimate(options)
        expected = _extra(mode) + old.seconds_per_image * images
        deviation = max(0.0, abs(seconds - expected) - NOISE_SECONDS) / expected
        new = Estimate(
            old.seconds_per_image + ALPHA * (per_image - old.seconds_per_image),
            old.spread + ALPHA * (SPREAD_FACTOR * deviation - old.spread),
            old.runs + 1,
        )
        self._known[kind] = new
        now = self._clock()
        due = new.runs <= SAVED_RUNS or now - self._saved_at.get(kind, -math.inf) >= SAVE_INTERVAL
        if self._store is not None and due:
            self._saved_at[kind] = now
            value = {"seconds_per_image": round(new.seconds_per_image, 4), "spread": round(new.spread, 4),
                     "runs": new.runs}  # fmt: skip
            try:
                await self._store.set_meta(_KEY.format(mode=mode, size=size), json.dumps(value))
            except Exception:
                log.warning("the learned run time could not be saved", exc_info=True)
        return new


def _parse(raw: str | None) -> Estimate | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        per_image, spread, runs = float(value["seconds_per_image"]), float(value["spread"]), int(value["runs"])
    except (ValueError, TypeError, KeyError):
        log.warning("a stored run time is unreadable; starting again from the default")
        return None
    if not (_BOUNDS[0] <= per_image <= _BOUNDS[1] and 0 <= spread < 10 and runs >= 0):
        return None
    return Estimate(per_image, spread, runs)
