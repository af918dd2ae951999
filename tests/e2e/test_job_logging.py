"""A job's log lines carry its id, guild, user and request_id, and never a token."""

from __future__ import annotations

import io
import logging

from bot.domain.job_state import JobState
from bot.logging_setup import TextFormatter
from bot.settings import secrets_of
from tests.imagine_helpers import imagine, job_in, start_imagine_bot


async def test_job_events_are_logged_with_their_context_and_without_tokens(
    fake_discord, fake_runcomfy, start_bot, caplog
):
    caplog.set_level(logging.INFO)
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    _interaction, job = await imagine(fake_discord, bot, {"prompt": "a quiet harbour", "images": 2})
    job = await job_in(bot, job.id, JobState.DELIVERED)

    job_records = [r for r in caplog.records if getattr(r, "ctx", {}).get("job") == job.id]
    messages = [r.getMessage() for r in job_records]
    assert "submitted" in messages and any(m.startswith("delivered 2 of 2") for m in messages)
    submitted = next(r for r in job_records if r.getMessage() == "submitted")
    assert submitted.ctx == {
        "job": job.id,
        "guild": job.guild_id,
        "user": job.user_id,
        "request_id": job.request_id,
    }

    formatter = TextFormatter()
    rendered = io.StringIO()
    for record in caplog.records:
        rendered.write(formatter.format(record) + "\n")
    text = rendered.getvalue()
    assert f"job={job.id} guild={job.guild_id} user={job.user_id} request_id={job.request_id}" in text
    secrets = [*secrets_of(bot.settings), fake_discord.token, fake_runcomfy.token]
    assert all(secret not in text for secret in secrets)
