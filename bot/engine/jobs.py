"""Creating and submitting jobs: validate, filter the prompt, reserve images, submit once, then track."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from bot.domain.job_state import JobState
from bot.domain.seedream import SeedreamRequest, build_request
from bot.engine.outcome_unknown import OUTCOME_UNKNOWN_MESSAGE, log_outcome_unknown
from bot.engine.pricing import PriceBook
from bot.engine.prompt_filter import PromptFilter
from bot.engine.quotas import Quotas
from bot.engine.tracker import Tracker
from bot.logging_setup import for_job
from bot.runcomfy.backoff import doubling
from bot.runcomfy.client import (
    AuthError,
    InsufficientBalanceError,
    JobHandle,
    RateLimitedError,
    RunComfyClient,
    RunComfyError,
    SubmissionOutcomeUnknown,
)
from bot.runcomfy.errors import ErrorKind
from bot.store.database import Job, Storage
from bot.store.errors import PASSING_ERRORS

log = logging.getLogger(__name__)

# A 429 answer means RunComfy did not take the job, so sending it again cannot charge twice.
RATE_LIMITED_ATTEMPTS = 4
RATE_LIMITED_MAX_WAIT = 10.0
REQUEST_ID_PATIENCE = 600.0  # seconds to keep trying to record a request id while the database cannot be written
REFUSED_PREFIX = "runcomfy:"  # the reason recorded for a job RunComfy refused: this, then the error's kind


def refused_reason(kind: ErrorKind) -> str:
    """The reason recorded for a job whose submit RunComfy refused with an error of `kind`."""
    return REFUSED_PREFIX + kind.value


def refused_kind(reason: str | None) -> ErrorKind | None:
    """The kind of RunComfy error recorded as a job's `reason`, if that is what it records."""
    if reason is None or not reason.startswith(REFUSED_PREFIX):
        return None
    try:
        return ErrorKind(reason.removeprefix(REFUSED_PREFIX))
    except ValueError:
        return None


class OutOfCredit(Exception):
    """RunComfy said the account has no credit: new sets are refused on every server until a probe shows it works
    again (see `bot.engine.pricing`). Nothing was reserved."""


class JobService:
    def __init__(
        self,
        storage: Storage,
        quotas: Quotas,
        runcomfy: RunComfyClient,
        tracker: Tracker,
        *,
        prompt_filter: PromptFilter | None = None,
        prices: PriceBook | None = None,
    ) -> None:
        self.storage = storage
        self.quotas = quotas
        self.runcomfy = runcomfy
        self.tracker = tracker
        self.prompt_filter = prompt_filter or PromptFilter(storage)
        self.prices = prices

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
        """Validate the options, check the prompt filter, then reserve the images.

        Raises ValidationError (PromptBlocked, a subclass, for a blocked prompt: nothing is reserved), OutOfCredit
        or QuotaRefused.
        """
        options: dict[str, Any] = {"prompt": prompt, "images": images, "seed": seed}
        if aspect is not None:
            options["aspect"] = aspect
        if mode is not None:
            options["mode"] = mode
        request = build_request(**options)
        if self.prices is not None and self.prices.out_of_credit:
            raise OutOfCredit
        await self.prompt_filter.check(guild_id, user_id, request.prompt)
        job = await self.quotas.reserve(
            guild_id, user_id, role_ids, request.images, channel_id=channel_id, options=request.options()
        )
        for_job(log, job).info("reserved %d image(s)", job.images_reserved)
        return job, request

    async def submit(self, job: Job) -> Job:
        """Submit a pending job exactly once. RunComfy errors end the job (refunded) instead of raising.

        The time of sending is recorded first, and the request id in its own write as soon as RunComfy answers,
        so that a crash in between is told apart from one before sending (see `bot.domain.job_state`, state unknown).
        """
        request = build_request(**job.options)
        job_log = for_job(log, job)
        job = await self.storage.mark_submitting(job.id)
        try:
            handle = await self._submit_when_not_rate_limited(request)
        except SubmissionOutcomeUnknown:
            job = await self.storage.finish_job(job.id, JobState.UNKNOWN, error=OUTCOME_UNKNOWN_MESSAGE)
            log_outcome_unknown(job)
            return job
        except RunComfyError as exc:
            if isinstance(exc, InsufficientBalanceError) and self.prices is not None:
                await self.prices.mark_out_of_credit()
            if isinstance(exc, AuthError):
                job_log.error("RunComfy rejected the API token; an admin must fix RUNCOMFY_API_TOKEN")
            else:
                job_log.warning("submission refused: %s", type(exc).__name__)
            return await self.storage.finish_job(job.id, JobState.FAILED, error=refused_reason(exc.kind))
        job = await self._record_request_id(job, handle.request_id)
        for_job(log, job).info("submitted")
        self.tracker.follow(job)
        return job

    async def _record_request_id(self, job: Job, request_id: str) -> Job:
        """RunComfy took the job: its id must reach the database, so a failing disk is waited out."""
        pause = 0.5
        deadline = time.monotonic() + REQUEST_ID_PATIENCE
        while True:
            try:
                return await self.storage.set_request_id(job.id, request_id)
            except PASSING_ERRORS as exc:
                if time.monotonic() + pause > deadline:
                    raise
                for_job(log, job).error(
                    "request id %s not recorded yet (%s); trying again in %.0f s", request_id, exc, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def _submit_when_not_rate_limited(self, request: SeedreamRequest) -> JobHandle:
        attempt = 1
        while True:
            try:
                return await self.runcomfy.submit(request)
            except RateLimitedError as exc:
                if attempt >= RATE_LIMITED_ATTEMPTS:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else doubling(1.0, RATE_LIMITED_MAX_WAIT, attempt)
                await asyncio.sleep(min(max(wait, 0.0), RATE_LIMITED_MAX_WAIT))
                attempt += 1
