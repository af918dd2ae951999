"""With the default poll settings, a finished job is seen within a fine poll step, and at little cost in requests."""

from __future__ import annotations

from bot.domain.job_state import JobState
from tests.imagine_helpers import image_messages, imagine, job_in, start_imagine_bot

DEFAULT_POLLING = {"poll_interval_seconds": 2.0, "poll_max_interval_seconds": 15.0}


async def test_a_completion_is_noticed_quickly_with_the_default_poll_settings(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, **DEFAULT_POLLING)
    # One image is expected to take about 2 s; this one starts after 0.3 s at position 1 and takes 2.8 s.
    fake_runcomfy.next_job(queue_seconds=0.3, run_seconds=2.8, queue_position=1)
    _, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse in a storm", "images": 1})

    job = await job_in(bot, job.id, JobState.DELIVERED, timeout=15)
    fake_job = fake_runcomfy.jobs[job.request_id]
    finished = fake_job.submitted_at + 0.3 + 2.8
    asked = [r for r in fake_runcomfy.requests_for(f"/v1/requests/{job.request_id}/", site="api")]
    seen = min(r.time for r in asked if r.time >= finished)
    # A minimum pause of POLL_INTERVAL_SECONDS would see it 1.9 s late here (polls at 0, 3 and 5 s).
    assert seen - finished < 1.0
    assert asked[-1].path.endswith("/result")  # the poll that saw it done also brought the images
    assert sum(r.path.endswith("/result") and r.time >= finished for r in asked) == 1
    assert len(asked) <= 12
    assert len(image_messages(fake_discord, job)) == 1
