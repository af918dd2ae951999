"""What the status editor remembers of one job's message, and when the next edit of it may be made.

Pacing: at most one edit per `interval` seconds. A change of the queue position alone waits until
`queue_interval` seconds after the last edit (the latest position is shown then); a change of state
goes out at the normal pace, at once if the last edit is old enough. The "uploading" state is shown
only if the delivery lasts longer than half an interval: a short one goes straight to "Done", which
would otherwise have to wait a whole interval behind it.

The buttons of the last edit are kept: a queued job's buttons are the same at every edit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import discord

from bot.discord.buttons import job_view
from bot.discord.embeds import status_embed
from bot.discord.status import StatusView, render_status
from bot.domain.job_state import JobState
from bot.store.database import Job


@dataclass
class StatusSlot:
    latest: Job
    notes: tuple[str, ...] = ()
    shown: StatusView | None = None
    shown_state: JobState | None = None
    shown_at: float = float("-inf")
    abandoned: StatusView | None = None  # a view whose edit kept failing; tried again once something changes
    next_edit: float = float("-inf")
    delivering_since: float | None = None
    rendered: tuple[Job, tuple[str, ...], str, StatusView] | None = None  # the last render, and what it was of
    buttons: tuple[tuple[bool, bool, str], discord.ui.View | None] | None = None  # the last buttons, and their kind
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the editor while it waits for its turn
    task: asyncio.Task[None] | None = None

    def saw(self, job: Job) -> None:
        """`job` is the latest snapshot."""
        self.latest = job
        if job.state is JobState.DELIVERING and self.delivering_since is None:
            self.delivering_since = time.monotonic()

    def saw_shown(self, view: StatusView, state: JobState) -> None:
        self.shown, self.shown_state, self.shown_at = view, state, time.monotonic()

    def render(self, language: str) -> StatusView:
        """The view of the latest job; rendered again only when the job, its notes or the language changed."""
        job, cached = self.latest, self.rendered
        if cached is not None and cached[1] == self.notes and cached[2] == language and cached[0] == job:
            return cached[3]
        view = render_status(job, self.notes, language)
        self.rendered = (job, self.notes, language, view)
        return view

    def message(self, view: StatusView, language: str) -> tuple[discord.Embed, discord.ui.View | None]:
        """The embed and the buttons that show `view` in `language`; the buttons are built again only on a change."""
        kind = (view.cancellable, view.finished, language)
        if self.buttons is None or self.buttons[0] != kind:
            buttons = job_view(self.latest.id, cancellable=view.cancellable, finished=view.finished, language=language)
            self.buttons = (kind, buttons)
        return status_embed(view), self.buttons[1]

    def due(self, interval: float, queue_interval: float) -> float:
        """When the latest job may be shown (monotonic time)."""
        state = self.latest.state
        if state is JobState.QUEUED and self.shown_state is JobState.QUEUED:
            return max(self.next_edit, self.shown_at + queue_interval)  # only the position moved
        if state is JobState.DELIVERING and self.delivering_since is not None:
            return max(self.next_edit, self.delivering_since + interval / 2)
        return self.next_edit

    def waits_for_queue_turn(self, interval: float, queue_interval: float) -> bool:
        """Whether the editor waits to show a new queue position. It shows the latest one at its turn, so a newer
        position needs no wake-up: positions come with every poll, the edit at most every `queue_interval`."""
        return (
            self.latest.state is JobState.QUEUED
            and self.shown_state is JobState.QUEUED
            and self.due(interval, queue_interval) > time.monotonic()
        )
