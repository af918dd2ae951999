"""The life of a job, in one place: its states and the moves allowed between them.

    pending → submitted → queued → running → delivering → delivered
                  ╰──────── or: cancelled, failed, expired ────────╯
    pending → unknown: the submit was sent but its answer was lost, so RunComfy may have taken (and
                       billed) a job whose request id the bot never learnt

A job may skip states between two polls of RunComfy (queued straight to delivering, say), so the
table allows forward jumps. A running job can no longer be cancelled: RunComfy only cancels a
request that is still in the queue.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def cancellable(self) -> bool:
        """Whether a Cancel can still stop it: RunComfy cancels only a request still in its queue."""
        return self in CANCELLABLE_STATES


TERMINAL_STATES = frozenset(
    {JobState.DELIVERED, JobState.CANCELLED, JobState.FAILED, JobState.EXPIRED, JobState.UNKNOWN}
)
UNFINISHED_STATES = frozenset(JobState) - TERMINAL_STATES
CANCELLABLE_STATES = frozenset({JobState.PENDING, JobState.SUBMITTED, JobState.QUEUED})


def sql_list(states: frozenset[JobState]) -> str:
    """`states` as an SQL list for `state IN ...`, so queries use these sets instead of spelling states out.

    In the order the states are declared: the partial index of unfinished jobs spells its condition in that order,
    and SQLite uses a partial index only for a query whose condition reads the same.
    """
    return "(" + ", ".join(f"'{state.value}'" for state in JobState if state in states) + ")"

_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.SUBMITTED, JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN}),
    JobState.SUBMITTED: frozenset(
        {
            JobState.QUEUED,
            JobState.RUNNING,
            JobState.DELIVERING,
            JobState.CANCELLED,
            JobState.FAILED,
            JobState.EXPIRED,
        }
    ),
    JobState.QUEUED: frozenset(
        {JobState.RUNNING, JobState.DELIVERING, JobState.CANCELLED, JobState.FAILED, JobState.EXPIRED}
    ),
    JobState.RUNNING: frozenset({JobState.DELIVERING, JobState.FAILED, JobState.EXPIRED}),
    JobState.DELIVERING: frozenset({JobState.DELIVERED, JobState.FAILED, JobState.EXPIRED}),
}


class IllegalTransition(Exception):
    """A job was asked to move to a state it cannot reach from its current one."""

    def __init__(self, old: JobState, new: JobState) -> None:
        super().__init__(f"a job cannot go from {old.value} to {new.value}")
        self.old = old
        self.new = new


def can_transition(old: JobState, new: JobState) -> bool:
    """True if `old → new` is allowed; staying in a non-terminal state is allowed (a no-op)."""
    old, new = JobState(old), JobState(new)
    if old == new:
        return not old.terminal
    return new in _ALLOWED.get(old, frozenset())


def check_transition(old: JobState, new: JobState) -> None:
    """Raise `IllegalTransition` unless `old → new` is allowed."""
    if not can_transition(old, new):
        raise IllegalTransition(JobState(old), JobState(new))
