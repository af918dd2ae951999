"""What a job's status message says, as plain data (the Discord side turns it into an embed).

Rendering is a pure function of the job (and of the delivery notes, once the images are posted), so
the status editor can compare two renders and edit the message only when what people see changed.
Nothing here depends on the time: a running job shows a Discord timestamp that counts up by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.job_state import JobState
from bot.domain.seedream import Aspect
from bot.domain.text import plural, shorten
from bot.store.database import Job

REASON_CHARS = 300

COLOURS = {
    JobState.PENDING: 0x95A5A6,
    JobState.SUBMITTED: 0x95A5A6,
    JobState.QUEUED: 0xF1C40F,
    JobState.RUNNING: 0x3498DB,
    JobState.DELIVERING: 0x3498DB,
    JobState.DELIVERED: 0x2ECC71,
    JobState.CANCELLED: 0x7F8C8D,
    JobState.FAILED: 0xE74C3C,
    JobState.EXPIRED: 0xE74C3C,
    JobState.UNKNOWN: 0xE67E22,
}
CANCELLABLE_STATES = frozenset({JobState.PENDING, JobState.SUBMITTED, JobState.QUEUED})


@dataclass(frozen=True)
class StatusView:
    title: str
    description: str
    fields: tuple[tuple[str, str], ...]
    state_line: str
    colour: int
    cancellable: bool
    finished: bool = False
    notes: tuple[str, ...] = ()  # how the images were delivered, links to them
    footer: str = ""




def state_line(job: Job) -> str:
    """One line telling where the job stands, in words a member understands."""
    state = job.state
    if state in (JobState.PENDING, JobState.SUBMITTED):
        return "⏳ Sending the job to RunComfy…"
    if state is JobState.QUEUED:
        if job.queue_position == 0:
            return "⏳ Queued at RunComfy — next in line"
        if job.queue_position is not None:
            return f"⏳ Queued at RunComfy — position {job.queue_position}"
        return "⏳ Queued at RunComfy"
    if state is JobState.RUNNING:
        started = int(job.started_at or job.updated_at)
        return f"🎨 Generating… (started <t:{started}:R>)"
    if state is JobState.DELIVERING:
        return "📤 Done generating — uploading the images…"
    if state is JobState.DELIVERED:
        delivered, asked = job.images_delivered, job.images_reserved
        if delivered >= asked:
            return f"✅ Done — {plural(delivered)}"
        return f"✅ Done — {delivered} of {plural(asked)}; the other {asked - delivered} given back"
    if state is JobState.CANCELLED:
        return f"🚫 Cancelled — {plural(job.images_reserved)} given back"
    reason = shorten(job.error or "something went wrong", REASON_CHARS).rstrip(".")
    if state is JobState.UNKNOWN:
        return f"❔ Outcome unknown: {reason}. {plural(job.images_reserved)} given back"
    return f"⚠️ Failed: {reason}. {plural(job.images_reserved)} given back"


def render_status(job: Job, notes: Sequence[str] = ()) -> StatusView:
    options = job.options
    try:
        aspect_label = Aspect.parse(options.get("aspect", "")).label
    except ValueError:
        aspect_label = str(options.get("aspect"))
    seed = options.get("seed")
    fields = (
        ("Images", str(job.images_reserved)),
        ("Aspect", aspect_label),
        ("Seed", "random" if seed is None else str(seed)),
        ("Mode", str(options.get("mode", "fast"))),
        ("Requested by", f"<@{job.user_id}>"),
    )
    return StatusView(
        title="Seedream image set",
        description=shorten(str(options.get("prompt", ""))),
        fields=fields,
        state_line=state_line(job),
        colour=COLOURS[job.state],
        cancellable=job.state in CANCELLABLE_STATES,
        finished=job.state.terminal,
        notes=tuple(notes),
        footer=f"Job {job.id}",
    )
