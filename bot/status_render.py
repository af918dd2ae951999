"""What a job's status message says, as plain data (the Discord side turns it into an embed).

Rendering is a pure function of the job, so the status editor can compare two
renders and edit the message only when what people see has changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobstate import JobState
from bot.seedream import Aspect
from bot.storage import Job

PROMPT_PREVIEW_CHARS = 200

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
}


@dataclass(frozen=True)
class StatusView:
    title: str
    description: str
    fields: tuple[tuple[str, str], ...]
    state_line: str
    colour: int
    cancellable: bool
    links: tuple[str, ...] = ()


def shorten(text: str, limit: int = PROMPT_PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plural(count: int, word: str = "image") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
        # A Discord timestamp counts up in every client, so the message need not be edited each second.
        started = int(job.started_at or job.updated_at)
        return f"🎨 Generating… (started <t:{started}:R>)"
    if state is JobState.DELIVERING:
        return "📤 Done generating — uploading the images…"
    if state is JobState.DELIVERED:
        delivered = job.images_delivered
        line = f"✅ Done — {_plural(delivered)}"
        if delivered < job.images_reserved:
            refund = job.images_reserved - delivered
            line += f" (the model made fewer than {job.images_reserved}; {_plural(refund)} given back)"
        return line
    if state is JobState.CANCELLED:
        return f"🚫 Cancelled — {_plural(job.images_reserved)} given back to your quota"
    reason = job.error or "something went wrong"
    return f"⚠️ Failed: {reason} — {_plural(job.images_reserved)} given back to your quota"


def render_status(job: Job) -> StatusView:
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
        cancellable=job.state in (JobState.PENDING, JobState.SUBMITTED, JobState.QUEUED),
    )
