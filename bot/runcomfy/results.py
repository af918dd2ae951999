"""What RunComfy's model API answers, typed: job states, handles, statuses, results and cancel outcomes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

log = logging.getLogger("bot.runcomfy.client")  # the name the client's other log lines use


class ModelRequest(Protocol):
    """What `submit` sends: the model's input, and how many images it asks for (for the log)."""

    @property
    def images(self) -> int: ...

    def to_input(self) -> dict[str, Any]: ...


_UNKNOWN_SEEN: set[str] = set()


class RemoteState(Enum):
    """A job's status at RunComfy."""

    QUEUED = "in_queue"
    RUNNING = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: str | None) -> RemoteState:
        """The state for any spelling RunComfy uses; an unknown one is logged and becomes UNKNOWN."""
        key = raw.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(raw, str) else None
        state = _STATE_SPELLINGS.get(key) if key else None
        if state is None:
            seen = raw if isinstance(raw, str) else repr(raw)
            level = logging.DEBUG if seen in _UNKNOWN_SEEN else logging.WARNING  # polled every few seconds: warn once
            if len(_UNKNOWN_SEEN) < 100:
                _UNKNOWN_SEEN.add(seen)
            log.log(level, "RunComfy sent an unknown job status %r; it will be polled again", raw)
            return cls.UNKNOWN
        return state

    @property
    def terminal(self) -> bool:
        return self in (RemoteState.COMPLETED, RemoteState.CANCELLED, RemoteState.FAILED)


_STATE_SPELLINGS = {
    "in_queue": RemoteState.QUEUED, "queued": RemoteState.QUEUED,
    "in_progress": RemoteState.RUNNING, "running": RemoteState.RUNNING,
    "completed": RemoteState.COMPLETED, "succeeded": RemoteState.COMPLETED,
    "cancelled": RemoteState.CANCELLED, "canceled": RemoteState.CANCELLED,
    "failed": RemoteState.FAILED,
}  # fmt: skip


@dataclass(frozen=True)
class JobHandle:
    request_id: str
    status_url: str | None
    result_url: str | None
    cancel_url: str | None


@dataclass(frozen=True)
class JobStatus:
    request_id: str
    state: RemoteState
    queue_position: int | None  # only while queued
    raw_state: str


@dataclass(frozen=True)
class JobResult:
    """A job's result; before completion it holds the current state and no images, so it can be polled."""

    request_id: str
    state: RemoteState
    image_urls: tuple[str, ...]
    error: str | None
    created_at: str | None
    finished_at: str | None
    cost_micros: int | None = None  # what RunComfy billed, when it says so (see bot.runcomfy.price)


class CancelOutcome(Enum):
    CANCELLED = "cancelled"
    NOT_CANCELLABLE = "not_cancellable"


@dataclass(frozen=True)
class CancelResult:
    request_id: str
    outcome: CancelOutcome
    state: RemoteState
