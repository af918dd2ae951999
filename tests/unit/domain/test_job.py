"""`Job.from_row`: a stored row becomes the same Job its constructor would build."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.domain.job import JOB_FIELDS, Job
from bot.domain.job_state import JobState


def _row(**changes: object) -> tuple[object, ...]:
    values: dict[str, object] = {name: None for name in JOB_FIELDS}
    values.update(
        id="0123456789ab", guild_id=1, channel_id=2, user_id=3, options='{"images":2,"prompt":"a fox"}',
        state="queued", queue_position=4, images_reserved=2, images_delivered=0, images_charged=0, settled=0,
        created_at=10.0, updated_at=11.0, cost_estimated=1,
    )  # fmt: skip
    values.update(changes)
    return tuple(values[name] for name in JOB_FIELDS)


def test_from_row_builds_the_job_the_constructor_builds() -> None:
    row = _row()
    job = Job.from_row(row)
    expected = dict(zip(JOB_FIELDS, row, strict=True))
    expected.update(
        options=json.loads(str(expected["options"])),
        state=JobState.QUEUED,
        settled=False,
        cost_estimated=True,
    )
    assert job == Job(**expected)  # type: ignore[arg-type]
    assert job.state is JobState.QUEUED and job.options == {"images": 2, "prompt": "a fox"}
    assert isinstance(job.settled, bool) and isinstance(job.cost_estimated, bool)
    assert hash(job.id) and dataclasses.replace(job, queue_position=1).queue_position == 1


def test_a_job_read_from_a_row_stays_frozen() -> None:
    job = Job.from_row(_row())
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.RUNNING  # type: ignore[misc]


@pytest.mark.parametrize("row", [_row()[:-1], (*_row(), "extra")], ids=["short", "long"])
def test_a_row_of_the_wrong_width_is_refused(row: tuple[object, ...]) -> None:
    with pytest.raises((ValueError, IndexError)):
        Job.from_row(row)
