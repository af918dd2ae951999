"""A job as stored: the `Job` record, its columns, its id and its options as JSON."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.domain.job_state import JobState

_JOB_ID_BYTES = 6  # 12 hex characters: short enough for a Discord custom_id, unique enough to retry rarely


@dataclass(frozen=True)
class Job:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    options: dict[str, Any]
    request_id: str | None
    state: JobState
    queue_position: int | None
    images_reserved: int
    images_delivered: int
    images_charged: int
    settled: bool
    error: str | None
    interaction_token: str | None = field(repr=False)
    application_id: int | None
    token_created_at: float | None
    reply_message_id: int | None
    reply_channel_id: int | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    submitted_at: float | None = None  # when the submit request was sent
    price_micros: int | None = None  # the quoted price per image when it was reserved (micro-dollars)
    cost_micros: int | None = None  # what it cost: RunComfy's figure, or an estimate (see cost_estimated)
    cost_estimated: bool = False

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> Job:
        """From a row selecting `JOB_COLUMNS`, in that order."""
        values = list(row)
        values[_OPTIONS] = json.loads(values[_OPTIONS])
        values[_STATE] = JobState(values[_STATE])
        values[_SETTLED] = bool(values[_SETTLED])
        values[_ESTIMATED] = bool(values[_ESTIMATED])
        # The fields straight into the instance, without the frozen __init__'s setattr per field: jobs are read
        # on every poll and every reservation. Equivalent to cls(*values), which a test checks.
        job = object.__new__(cls)
        job.__dict__.update(zip(JOB_FIELDS, values, strict=True))
        return job


JOB_FIELDS = tuple(Job.__dataclass_fields__)
JOB_COLUMNS = ", ".join(JOB_FIELDS)
_OPTIONS, _STATE, _SETTLED, _ESTIMATED = (
    JOB_FIELDS.index(name) for name in ("options", "state", "settled", "cost_estimated")
)


def new_job_id() -> str:
    return secrets.token_hex(_JOB_ID_BYTES)


def options_json(options: Mapping[str, Any]) -> str:
    """The job options as stored; raises ValueError if they are not plain JSON values."""
    try:
        return json.dumps(dict(options), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Job options must be plain JSON values: {exc}") from None
