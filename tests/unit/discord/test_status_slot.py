"""The status slot keeps the last buttons: a queued job's edits reuse them; a change of what they offer rebuilds."""

from __future__ import annotations

from bot.discord.status import render_status
from bot.discord.status_slot import StatusSlot
from bot.domain.job_state import JobState
from tests.imagine_helpers import make_job


def queued(position: int):
    return make_job(state=JobState.QUEUED, queue_position=position)


def test_edits_of_a_queued_job_reuse_its_buttons_with_the_embed_of_each_new_view():
    slot = StatusSlot(queued(5))
    first, second = render_status(queued(5)), render_status(queued(4))
    embed_1, buttons_1 = slot.message(first, "en-US")
    embed_2, buttons_2 = slot.message(second, "en-US")
    assert buttons_1 is not None and buttons_2 is buttons_1
    assert "position 4" in embed_2.fields[-1].value and "position 5" in embed_1.fields[-1].value


def test_the_buttons_are_built_again_when_what_they_offer_or_their_language_changes():
    slot = StatusSlot(queued(5))
    _, cancel = slot.message(render_status(queued(5)), "en-US")
    assert cancel is not None and [item.item.label for item in cancel.children] == ["Cancel"]
    _, in_german = slot.message(render_status(queued(5), language="de"), "de")
    assert in_german is not cancel and [item.item.label for item in in_german.children] == ["Abbrechen"]
    running = make_job(state=JobState.RUNNING, started_at=1_700_000_000.0)
    _, none = slot.message(render_status(running), "en-US")
    assert none is None
