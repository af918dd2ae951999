"""When to ask RunComfy about a job again, and whether to ask for its status or its result.

Pure arithmetic, for the poll loop (`bot.engine.polling`) the bot's tracker and the CLI share:

- Queued: the queue is read with `status` (it carries the position). Position p waits
  `interval × (1 + p/2)` (at most `max_interval`), but position 1, about to start, is asked every
  `front` seconds, so a start is seen within about a second.
- Running: the job is read with `result`, which answers the status until the job is done and then
  carries the images, so the finish costs no extra request. The run time is expected from finished
  jobs (`bot.store.run_times`): the policy sleeps until a window before the expected end, approaches it in
  shrinking steps, polls every `fine` seconds around it, and backs off again (a quarter of the time
  overdue) if the job runs long. The window is `lead` seconds plus `spread` (the learned relative
  variation of run times, at least `min_spread`) of the expected run: together they cover the start,
  known only to about half a position-1 poll. Inside it no pause is longer than `max_gap`.
- Anything else (just submitted, an unknown status): `interval`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Ask(enum.Enum):
    STATUS = "status"
    RESULT = "result"


class Phase(enum.Enum):
    SUBMITTED = "submitted"  # sent; RunComfy has not been asked yet
    QUEUED = "queued"
    RUNNING = "running"
    UNKNOWN = "unknown"  # a status this code does not know


@dataclass(frozen=True)
class Poll:
    delay: float  # seconds until the next request
    ask: Ask


@dataclass(frozen=True)
class PollPolicy:
    interval: float = 2.0  # POLL_INTERVAL_SECONDS
    max_interval: float = 15.0  # POLL_MAX_INTERVAL_SECONDS
    front: float = 1.0  # position 1
    fine: float = 0.2  # around the expected end
    lead: float = 0.4  # seconds of the window before the expected end, however exact the estimate
    approach: float = 0.7  # inside the window, wait this share of the time left
    overdue: float = 0.25  # past the expected end, wait this share of the time overdue
    min_spread: float = 0.1
    max_spread: float = 0.4
    max_gap: float = 1.0  # longest wait inside the window (on either side of the expected end)

    def __post_init__(self) -> None:
        if not (0 < self.fine <= self.front and 0 < self.interval <= self.max_interval):
            raise ValueError("poll intervals must be positive, fine <= front and interval <= max_interval")

    @classmethod
    def from_intervals(cls, interval: float, max_interval: float) -> PollPolicy:
        """The policy for POLL_INTERVAL_SECONDS and POLL_MAX_INTERVAL_SECONDS (short ones shorten every pause)."""
        front = min(cls.front, interval)
        return cls(interval=interval, max_interval=max_interval, front=front, fine=min(cls.fine, front))

    def next(
        self,
        phase: Phase,
        *,
        position: int | None = None,
        elapsed: float = 0.0,
        expected: float | None = None,
        spread: float = 0.0,
    ) -> Poll:
        """The next poll of a job in `phase`: queued at `position`, or running for `elapsed` of `expected` s."""
        if phase is Phase.QUEUED:
            return Poll(self.queued(position), Ask.STATUS)
        if phase is Phase.RUNNING:
            return Poll(self.running(elapsed, expected, spread), Ask.RESULT)
        return Poll(min(self.interval, self.max_interval), Ask.STATUS)

    def queued(self, position: int | None) -> float:
        if position is None:
            delay = self.interval * 1.5
        elif position <= 1:
            delay = min(self.front, self.interval)
        else:
            delay = self.interval * (1 + position / 2)
        return min(delay, self.max_interval)

    def running(self, elapsed: float, expected: float | None, spread: float = 0.0) -> float:
        if expected is None or expected <= 0:
            return self.interval
        left = expected - max(0.0, elapsed)
        window = self.lead + min(max(spread, self.min_spread), self.max_spread) * expected
        if left > window:
            # Wake at the window's start, but never sleep past max_interval.
            return min(max(left - window, self.fine), self.max_interval)
        delay = self.approach * left if left > 0 else self.overdue * -left
        if -left <= window:
            delay = min(delay, self.max_gap)
        return min(max(delay, self.fine), self.max_interval)


@dataclass
class RunWatch:
    """Times a job's run from the polls that saw it, on one clock.

    The start lies between the last poll that saw the job queued and the first that saw it running; as
    position 1 is asked every `front` seconds, it is taken half of that (at most) before the first. A job
    first seen running (resumed, or it skipped the queue between two polls) has no known start.
    """

    front: float
    started_at: float | None = None  # the estimated start
    start_seen: bool = False  # the start fell between two polls: the run can be timed
    last_queued_at: float | None = None
    last_running_at: float | None = None

    def saw(self, phase: Phase, now: float) -> None:
        if phase is Phase.QUEUED:
            self.last_queued_at = now
        elif phase is Phase.RUNNING:
            if not self.start_seen and self.last_queued_at is not None:
                self.started_at = now - min(now - self.last_queued_at, self.front) / 2
                self.start_seen = True
            elif self.started_at is None:
                self.started_at = now
            self.last_running_at = now

    def elapsed(self, now: float) -> float:
        return 0.0 if self.started_at is None else max(0.0, now - self.started_at)

    def run_seconds(self, done_at: float, max_gap: float) -> float | None:
        """The run's length if its start was seen: to halfway (at most `max_gap`/2) from the last running poll."""
        if not self.start_seen or self.started_at is None or self.last_running_at is None:
            return None
        ended = done_at - min(done_at - self.last_running_at, max_gap) / 2
        return ended - self.started_at
