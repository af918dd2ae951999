"""Creating and submitting jobs: validate, reserve the quota, submit once, hand over to the tracker."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.jobstate import JobState
from bot.quotas import Quotas
from bot.runcomfy import AuthError, RunComfyClient, RunComfyError, SubmissionOutcomeUnknown
from bot.seedream import SeedreamRequest, build_request
from bot.storage import Job, Storage
from bot.tracker import Tracker

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN_MESSAGE = "RunComfy did not confirm the job, so it may or may not have started; it was not sent again"


class JobService:
    def __init__(self, storage: Storage, quotas: Quotas, runcomfy: RunComfyClient, tracker: Tracker) -> None:
        self.storage = storage
        self.quotas = quotas
        self.runcomfy = runcomfy
        self.tracker = tracker

    async def create(
        self,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        role_ids: Iterable[int],
        prompt: str,
        images: int | None = None,
        aspect: str | None = None,
        seed: int | None = None,
        mode: str | None = None,
    ) -> tuple[Job, SeedreamRequest]:
        """Validate the options and reserve their images. Raises ValidationError or QuotaRefused."""
        options = {"prompt": prompt, "images": images, "seed": seed}
        if aspect is not None:
            options["aspect"] = aspect
        if mode is not None:
            options["mode"] = mode
        request = build_request(**options)
        job = await self.quotas.reserve(
            guild_id, user_id, role_ids, request.images, channel_id=channel_id, options=request.options()
        )
        log.info("job %s: reserved %d image(s) for user %s in guild %s", job.id, job.images_reserved, user_id, guild_id)
        return job, request

    async def submit(self, job: Job) -> Job:
        """Submit a pending job exactly once. RunComfy errors end the job (refunded) instead of raising."""
        request = build_request(**job.options)
        try:
            handle = await self.runcomfy.submit(request)
        except SubmissionOutcomeUnknown:
            log.error("job %s: submission outcome unknown; not resubmitted", job.id)
            return await self.storage.finish_job(job.id, JobState.FAILED, error=OUTCOME_UNKNOWN_MESSAGE)
        except RunComfyError as exc:
            if isinstance(exc, AuthError):
                log.error("job %s: RunComfy rejected the API token; an admin must fix RUNCOMFY_API_TOKEN", job.id)
            else:
                log.warning("job %s: submission refused: %s", job.id, type(exc).__name__)
            return await self.storage.finish_job(job.id, JobState.FAILED, error=exc.user_message)
        job = await self.storage.set_request_id(job.id, handle.request_id)
        log.info("job %s: submitted as request %s", job.id, handle.request_id)
        self.tracker.follow(job)
        return job
