"""What a job's status message says, as plain data (the Discord side turns it into an embed).

Rendering is a pure function of the job (and of the delivery notes, once the images are posted), so
the status editor can compare two renders and edit the message only when what people see changed.
Nothing here depends on the time: a running job shows a Discord timestamp that counts up by itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from bot.discord import i18n
from bot.discord.failure_reasons import failure_reason
from bot.discord.i18n import Text, t, tn
from bot.domain.job_state import JobState
from bot.domain.seedream import Aspect
from bot.domain.text import shorten
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
    status_label: str = "Status"


def state_line(job: Job, language: str = i18n.SOURCE_LANGUAGE) -> Text:
    """One line telling where the job stands, in words a member understands."""
    state = job.state
    if state in (JobState.PENDING, JobState.SUBMITTED):
        return t("⏳ Sending the job to RunComfy…")
    if state is JobState.QUEUED:
        if job.queue_position == 0:
            return t("⏳ Queued at RunComfy — next in line")
        if job.queue_position is not None:
            return t("⏳ Queued at RunComfy — position {position}", position=job.queue_position)
        return t("⏳ Queued at RunComfy")
    if state is JobState.RUNNING:
        started = int(job.started_at or job.updated_at)
        return t("🎨 Generating… (started {time})", time=f"<t:{started}:R>")
    if state is JobState.DELIVERING:
        return t("📤 Done generating — uploading the images…")
    if state is JobState.DELIVERED:
        delivered, asked = job.images_delivered, job.images_reserved
        if delivered >= asked:
            return tn("✅ Done — {count} image", "✅ Done — {count} images", delivered)
        return tn(
            "✅ Done — {delivered} of {count} image; the other {back} given back",
            "✅ Done — {delivered} of {count} images; the other {back} given back",
            asked,
            delivered=delivered,
            back=asked - delivered,
        )
    if state is JobState.CANCELLED:
        return tn(
            "🚫 Cancelled — {count} image given back", "🚫 Cancelled — {count} images given back", job.images_reserved
        )
    reason = shorten(failure_reason(job.error, language), REASON_CHARS).rstrip(".")
    if state is JobState.UNKNOWN:
        return tn(
            "❔ Outcome unknown: {reason}. {count} image given back",
            "❔ Outcome unknown: {reason}. {count} images given back",
            job.images_reserved,
            reason=reason,
        )
    return tn(
        "⚠️ Failed: {reason}. {count} image given back",
        "⚠️ Failed: {reason}. {count} images given back",
        job.images_reserved,
        reason=reason,
    )


# The status message's fixed words, made once (a render happens at every change of every job).
_MODES = {"fast": t("fast"), "standard": t("standard")}
_RANDOM = t("random")
_IMAGES, _ASPECT, _SEED, _MODE, _REQUESTED_BY = t("Images"), t("Aspect"), t("Seed"), t("Mode"), t("Requested by")
_TITLE, _STATUS = t("Seedream image set"), t("Status")


@functools.lru_cache(maxsize=256)
def _aspect_label(aspect: object, language: str) -> str:
    try:
        label = Aspect.parse(str(aspect or "")).label
    except ValueError:
        return str(aspect)
    return i18n.translations(language, "commands").pgettext("choice", label)  # the /imagine choice's own name


def render_status(job: Job, notes: Sequence[str] = (), language: str = i18n.SOURCE_LANGUAGE) -> StatusView:
    """What the status message shows, in `language` (the server's: the message is public)."""
    options = job.options
    seed = options.get("seed")
    mode = str(options.get("mode", "fast"))
    fields: tuple[tuple[Text, str], ...] = (
        (_IMAGES, str(job.images_reserved)),
        (_ASPECT, _aspect_label(options.get("aspect"), language)),
        (_SEED, _RANDOM if seed is None else str(seed)),
        (_MODE, _MODES.get(mode, mode)),
        (_REQUESTED_BY, f"<@{job.user_id}>"),
    )
    return StatusView(
        title=_TITLE.in_language(language),
        description=shorten(str(options.get("prompt", ""))),
        fields=tuple((name.in_language(language), i18n.translate_to(value, language)) for name, value in fields),
        state_line=state_line(job, language).in_language(language),
        colour=COLOURS[job.state],
        cancellable=job.state.cancellable,
        finished=job.state.terminal,
        notes=tuple(i18n.translate_to(note, language) for note in notes),
        footer=t("Job {id}", id=job.id).in_language(language),
        status_label=_STATUS.in_language(language),
    )
