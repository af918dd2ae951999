"""Jobs whose submit RunComfy never confirmed: RunComfy may have made (and billed) them without the bot
learning their request id. They end in the state `unknown`, refunded, and are reported once in the log."""

from __future__ import annotations

import logging
import time

from bot.logging_setup import for_job
from bot.store.database import Job

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN_MESSAGE = (
    "RunComfy did not confirm the job, so it may have been made (and billed) without the bot knowing; "
    "it was not sent again"
)


def log_outcome_unknown(job: Job) -> None:
    """The one log line for a job RunComfy may have taken and billed without the bot knowing its request id."""
    sent = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(job.submitted_at or job.created_at))
    for_job(log, job).error(
        "submit outcome unknown (sent %s): RunComfy may have made and billed this set; its images were given back "
        "to the member. Look for a Seedream request sent at that time on RunComfy's Generations page.",
        sent,
    )
