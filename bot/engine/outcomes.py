"""What the tracker reports about a job's end and a Cancel click, as data the Discord layer words.

The failure reasons are stored with a failed job; `bot.discord.failure_reasons` turns the known ones into each
language.
"""

from __future__ import annotations

import enum

RESTART_MESSAGE = "the bot restarted before it could send this job to RunComfy"
EXPIRED_MESSAGE = "RunComfy no longer knows this job (it expired)"
NOT_DOWNLOADED_MESSAGE = "the images could not be downloaded from RunComfy (they may have expired)"
GENERATION_FAILED = "RunComfy could not generate it"
UPSTREAM_EXCERPT_CHARS = 80  # members see RunComfy's own words only as a short, masked excerpt


class CancelReply(enum.Enum):
    CANCELLED = "cancelled"
    NOT_CANCELLABLE = "not_cancellable"  # already generating
    REFUSED = "refused"  # still queued, but RunComfy would not cancel it just now
    FINISHED = "finished"
    NOT_SUBMITTED_YET = "not_submitted_yet"
    UNKNOWN_JOB = "unknown_job"
    UNAVAILABLE = "unavailable"  # RunComfy could not be reached
