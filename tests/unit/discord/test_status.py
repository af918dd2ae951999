"""What the status message says in each state, as plain data."""

from __future__ import annotations

import pytest

from bot.discord.runcomfy_texts import PROBLEMS
from bot.discord.status import render_status, state_line
from bot.domain.job_state import JobState
from bot.domain.text import duration_text
from bot.engine.jobs import refused_reason
from bot.runcomfy.errors import ErrorKind
from tests.imagine_helpers import make_job


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"state": JobState.PENDING}, "⏳ Sending the job to RunComfy…"),
        ({"state": JobState.SUBMITTED}, "⏳ Sending the job to RunComfy…"),
        ({"state": JobState.QUEUED}, "⏳ Queued at RunComfy"),
        ({"state": JobState.QUEUED, "queue_position": 7}, "⏳ Queued at RunComfy — position 7"),
        ({"state": JobState.QUEUED, "queue_position": 0}, "⏳ Queued at RunComfy — next in line"),
        ({"state": JobState.RUNNING, "started_at": 1_700_000_042.7}, "🎨 Generating… (started <t:1700000042:R>)"),
        ({"state": JobState.DELIVERING}, "📤 Done generating — uploading the images…"),
        ({"state": JobState.DELIVERED, "images_delivered": 4}, "✅ Done — 4 images"),
        (
            {"state": JobState.DELIVERED, "images_delivered": 1},
            "✅ Done — 1 of 4 images; the other 3 given back",
        ),
        ({"state": JobState.CANCELLED}, "🚫 Cancelled — 4 images given back"),
        (
            {"state": JobState.FAILED, "error": "RunComfy could not generate it (bad luck)."},
            "⚠️ Failed: RunComfy could not generate it (bad luck). 4 images given back",
        ),
        (
            {"state": JobState.EXPIRED, "error": None},
            "⚠️ Failed: something went wrong. 4 images given back",
        ),
        ({"state": JobState.CANCELLED, "images_reserved": 1}, "🚫 Cancelled — 1 image given back"),
    ],
)
def test_state_line(changes, expected):
    assert state_line(make_job(**changes)) == expected


def test_the_view_shows_the_options_the_requester_and_the_job():
    options = {"prompt": "x" * 300, "images": 4, "aspect": "1440:2560 (9:16)", "seed": 7, "mode": "standard"}
    view = render_status(make_job(options=options, user_id=99))
    assert dict(view.fields) == {
        "Images": "4",
        "Aspect": "9:16 portrait (1440×2560)",
        "Seed": "7",
        "Mode": "standard",
        "Requested by": "<@99>",
    }
    assert len(view.description) == 200 and view.description.endswith("…")
    assert view.footer == "Job 0123456789ab"
    assert render_status(make_job()).fields[2] == ("Seed", "random")


@pytest.mark.parametrize(
    ("state", "cancellable", "finished"),
    [
        (JobState.PENDING, True, False),
        (JobState.QUEUED, True, False),
        (JobState.RUNNING, False, False),
        (JobState.DELIVERING, False, False),
        (JobState.DELIVERED, False, True),
        (JobState.FAILED, False, True),
    ],
)
def test_cancel_only_while_waiting(state, cancellable, finished):
    view = render_status(make_job(state=state))
    assert (view.cancellable, view.finished) == (cancellable, finished)


def test_rendering_is_pure_so_unchanged_jobs_compare_equal():
    job = make_job(state=JobState.QUEUED, queue_position=3)
    assert render_status(job) == render_status(make_job(state=JobState.QUEUED, queue_position=3))
    assert render_status(job) != render_status(make_job(state=JobState.QUEUED, queue_position=2))
    assert render_status(job, ["note"]) != render_status(job)
    assert render_status(job, ["note"]).notes == ("note",)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_a_job_runcomfy_refused_says_why_in_the_servers_language(kind):
    job = make_job(state=JobState.FAILED, error=refused_reason(kind))
    english, german = state_line(job), state_line(job, "de")
    assert "runcomfy:" not in english and "_" not in english
    assert english.startswith("⚠️ Failed: ") and PROBLEMS[kind].rstrip(".") in english
    assert german != english and PROBLEMS[kind].in_language("de") in german


def test_an_unknown_recorded_kind_is_shown_as_recorded():
    assert "runcomfy:something_new" in state_line(make_job(state=JobState.FAILED, error="runcomfy:something_new"))


def test_a_long_failure_reason_is_shortened():
    line = state_line(make_job(state=JobState.FAILED, error="word " * 200))
    assert len(line) < 400 and "…" in line


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (1800, "30 minutes"),
        (3600, "1 hour"),
        (3900, "1 hour 5 minutes"),
    ],
)
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text


@pytest.mark.parametrize("state", list(JobState))
def test_the_public_status_never_says_your(state):
    # Everyone in the channel reads it, so "your quota" would be wrong for all but the requester.
    view = render_status(make_job(state=state, images_delivered=1, started_at=1_700_000_000.0))
    assert "your" not in " ".join([view.state_line, *view.notes, view.description]).lower()


@pytest.mark.parametrize("state", list(JobState))
def test_the_cancel_button_shows_exactly_for_cancellable_states(state):
    assert render_status(make_job(state=state)).cancellable is state.cancellable


@pytest.mark.parametrize(
    ("error", "language", "said"),
    [
        (
            f"RunComfy did not finish it within {duration_text(9000)}",
            "de",
            "⚠️ Fehlgeschlagen: RunComfy hat ihn nicht innerhalb von 2 Stunden 30 Minuten fertiggestellt. "
            "3 Bilder zurückgegeben",
        ),
        (
            f"the images could not be delivered within {duration_text(45)}",
            "fr",
            "⚠️ Échec : les images n'ont pas pu être livrées en 45 secondes. 3 images rendues",
        ),
        (
            "Discord kept refusing the upload",
            "it",
            "⚠️ Non riuscito: Discord ha continuato a rifiutare il caricamento. 3 immagini restituite",
        ),
        (
            "the bot restarted before it could send this job to RunComfy",
            "es",
            "⚠️ Falló: el bot se reinició antes de poder enviar este trabajo a RunComfy. 3 imágenes devueltas",
        ),
    ],
)
def test_the_bots_own_failure_reasons_are_said_in_the_servers_language(error, language, said):
    job = make_job(state=JobState.FAILED, error=error, images_reserved=3)
    assert render_status(job, language=language).state_line == said
