"""The status editor: it edits only on change, at most once per interval, retries failed edits, and the embed fits."""

from __future__ import annotations

import asyncio
import itertools
import time

from bot.discord.embeds import STATUS_FIELD_CHARS, status_embed
from bot.discord.presenter import DiscordPresenter
from bot.discord.status import StatusView, render_status
from bot.discord.status_slot import StatusSlot
from bot.domain.job_state import JobState
from bot.engine.delivery import PostRefused
from tests.imagine_helpers import eventually, make_job


class RecordingPresenter(DiscordPresenter):
    """The real coalescing, with Discord replaced by a list of (time, view) edits."""

    def __init__(
        self, interval: float, *, queue_interval: float | None = None, failures: list[Exception] | None = None
    ) -> None:
        queue_interval = interval if queue_interval is None else queue_interval
        super().__init__(bot=None, storage=None, edit_interval=interval, queue_edit_interval=queue_interval)  # type: ignore[arg-type]
        self.edits: list[tuple[float, StatusView]] = []
        self.attempts = 0
        self.failures = failures or []

    def _language(self, job) -> str:
        return "en"  # no guilds without Discord

    async def _show(self, job, view) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.edits.append((time.monotonic(), view))


def queued(position: int, at: float = 0.0):
    return make_job(state=JobState.QUEUED, queue_position=position, updated_at=1_700_000_000.0 + at)


async def idle(presenter: RecordingPresenter, job_id: str = "0123456789ab") -> None:
    slot = presenter._slots.get(job_id)
    if slot is not None and slot.task is not None:
        await slot.task


async def test_the_first_change_is_shown_at_once_and_an_unchanged_job_is_not_shown_again():
    presenter = RecordingPresenter(0.05)
    await presenter.job_changed(queued(3))
    await idle(presenter)
    await presenter.job_changed(queued(3, at=1))  # polled again, nothing people see changed
    await idle(presenter)
    assert [view.state_line for _t, view in presenter.edits] == ["⏳ Queued at RunComfy — position 3"]


async def test_a_burst_of_changes_becomes_two_edits_ending_on_the_latest():
    presenter = RecordingPresenter(0.2)
    for step in range(20):
        await presenter.job_changed(queued(40 - step, at=step))
        await asyncio.sleep(0.005)
    await idle(presenter)
    assert len(presenter.edits) == 2
    assert presenter.edits[-1][1] == render_status(queued(21))
    assert presenter.edits[1][0] - presenter.edits[0][0] >= 0.2 - 0.01


async def test_a_steady_stream_of_changes_is_edited_at_most_once_per_interval():
    interval = 0.1
    presenter = RecordingPresenter(interval)
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 0.55:
        await presenter.job_changed(queued(100 - step, at=step))
        step += 1
        await asyncio.sleep(0.01)
    await idle(presenter)
    times = [t for t, _view in presenter.edits]
    assert step > 30
    assert len(times) <= 0.55 / interval + 2
    assert all(later - earlier >= interval - 0.01 for earlier, later in itertools.pairwise(times))
    assert presenter.edits[-1][1] == render_status(queued(100 - step + 1))


def running(at: float = 0.0):
    return make_job(state=JobState.RUNNING, started_at=1.0, updated_at=1_700_000_000.0 + at)


def lines(presenter: RecordingPresenter) -> list[str]:
    return [view.state_line.split("…")[0].split(" (")[0] for _t, view in presenter.edits]


async def test_a_move_in_the_queue_waits_for_the_queue_interval_but_a_start_does_not():
    presenter = RecordingPresenter(0.01, queue_interval=60.0)
    await presenter.job_changed(queued(5))
    await eventually(lambda: presenter.edits)
    await asyncio.sleep(0.05)
    await presenter.job_changed(queued(4, at=1))
    await presenter.job_changed(queued(3, at=2))
    await asyncio.sleep(0.1)
    assert lines(presenter) == ["⏳ Queued at RunComfy — position 5"]

    await presenter.job_changed(running(at=3))
    await asyncio.wait_for(idle(presenter), 5)
    assert lines(presenter) == ["⏳ Queued at RunComfy — position 5", "🎨 Generating"]


async def test_the_latest_position_is_shown_once_the_queue_interval_has_passed():
    presenter = RecordingPresenter(0.01, queue_interval=0.3)
    await presenter.job_changed(queued(5))
    await eventually(lambda: presenter.edits)
    for step, position in enumerate((4, 3, 2), start=1):
        await presenter.job_changed(queued(position, at=step))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(idle(presenter), 5)
    assert [view.state_line[-10:] for _t, view in presenter.edits] == ["position 5", "position 2"]
    assert presenter.edits[1][0] - presenter.edits[0][0] >= 0.3 - 0.01


async def test_positions_that_arrive_while_the_editor_waits_its_turn_do_not_wake_it(monkeypatch):
    renders = 0
    render = StatusSlot.render

    def counting(self, language):
        nonlocal renders
        renders += 1
        return render(self, language)

    monkeypatch.setattr(StatusSlot, "render", counting)
    presenter = RecordingPresenter(0.01, queue_interval=0.3)
    await presenter.job_changed(queued(50))
    await eventually(lambda: presenter.edits)
    before = renders
    for step in range(1, 21):  # a poll a few ms apart, each with a new position
        await presenter.job_changed(queued(50 - step, at=step))
        await asyncio.sleep(0.005)
    await asyncio.wait_for(idle(presenter), 5)
    assert [view.state_line[-11:] for _t, view in presenter.edits] == ["position 50", "position 30"]
    assert renders - before <= 3  # its turn came once: one render for the edit, one to see nothing is left


async def test_a_short_delivery_goes_straight_to_done():
    presenter = RecordingPresenter(0.4)
    await presenter.job_changed(running())
    await eventually(lambda: presenter.edits)
    await asyncio.sleep(0.45)  # the last edit is old: a change could be shown at once
    await presenter.job_changed(make_job(state=JobState.DELIVERING, started_at=1.0, updated_at=1_700_000_001.0))
    await asyncio.sleep(0.05)  # the images are posted well within half an interval
    await presenter.job_changed(make_job(state=JobState.DELIVERED, images_delivered=4, updated_at=1_700_000_002.0))
    await asyncio.wait_for(idle(presenter), 5)
    assert lines(presenter) == ["🎨 Generating", "✅ Done — 4 images"]


async def test_a_long_delivery_shows_that_the_images_are_being_uploaded():
    presenter = RecordingPresenter(0.1)
    await presenter.job_changed(running())
    await eventually(lambda: presenter.edits)
    await presenter.job_changed(make_job(state=JobState.DELIVERING, started_at=1.0, updated_at=1_700_000_001.0))
    await eventually(lambda: len(presenter.edits) == 2)
    await presenter.job_changed(make_job(state=JobState.DELIVERED, images_delivered=4, updated_at=1_700_000_002.0))
    await asyncio.wait_for(idle(presenter), 5)
    assert lines(presenter) == ["🎨 Generating", "📤 Done generating — uploading the images", "✅ Done — 4 images"]


async def test_an_older_snapshot_never_undoes_a_newer_one():
    presenter = RecordingPresenter(0.01)
    await presenter.job_changed(make_job(state=JobState.RUNNING, started_at=1.0, updated_at=1_700_000_010.0))
    await idle(presenter)
    await presenter.job_changed(queued(2, at=5))  # read before the job started running
    await idle(presenter)
    assert [view.state_line.split("…")[0] for _t, view in presenter.edits] == ["🎨 Generating"]


async def test_a_failed_edit_is_tried_again_until_it_works():
    presenter = RecordingPresenter(0.01, failures=[RuntimeError("Discord is down"), RuntimeError("still down")])
    await presenter.job_changed(queued(2))
    await idle(presenter)
    assert presenter.attempts == 3
    assert [view.state_line for _t, view in presenter.edits] == ["⏳ Queued at RunComfy — position 2"]


async def test_a_refused_edit_is_not_retried_but_the_next_change_is_tried():
    presenter = RecordingPresenter(0.01, failures=[PostRefused("missing permissions")])
    await presenter.job_changed(queued(2))
    await idle(presenter)
    assert (presenter.attempts, presenter.edits) == (1, [])
    await presenter.job_changed(queued(1, at=1))
    await idle(presenter)
    assert [view.state_line for _t, view in presenter.edits] == ["⏳ Queued at RunComfy — position 1"]


async def test_a_finished_job_is_not_shown_again_from_an_older_snapshot():
    presenter = RecordingPresenter(0.01)
    await presenter.job_changed(make_job(state=JobState.DELIVERED, images_delivered=4, updated_at=1_700_000_009.0))
    await eventually(lambda: not presenter._slots)
    await presenter.job_changed(queued(5))
    await idle(presenter)
    assert [view.state_line for _t, view in presenter.edits] == ["✅ Done — 4 images"]


async def test_close_drops_pending_edits_and_ignores_later_changes():
    presenter = RecordingPresenter(10.0)
    await presenter.job_changed(queued(5))
    await eventually(lambda: presenter.edits)
    await presenter.job_changed(queued(4, at=1))  # waits for the 10 s interval
    await presenter.close()
    await presenter.job_changed(queued(3, at=2))
    await asyncio.sleep(0.02)
    assert [view.state_line[-10:] for _t, view in presenter.edits] == ["position 5"]
    assert all(slot.task is None or slot.task.done() for slot in presenter._slots.values())


def test_the_status_embed_keeps_within_discord_field_limits():
    notes = [f"[Image {i}](https://example.com/{'x' * 120})" for i in range(15)]
    embed = status_embed(render_status(make_job(state=JobState.DELIVERED, images_delivered=4), notes))
    status = embed.fields[-1]
    assert status.name == "Status" and status.value.startswith("✅ Done — 4 images")
    assert len(status.value) <= STATUS_FIELD_CHARS and "[Image 0]" in status.value
    assert [field.name for field in embed.fields[:5]] == ["Images", "Aspect", "Seed", "Mode", "Requested by"]
    assert embed.footer.text == "Job 0123456789ab"
