"""The Discord side as the tracker sees it: what shows a job's status and posts its images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.engine.delivery import DeliveryReport, PendingPart, PreparedImage
from bot.store.database import Job


class JobObserver(Protocol):
    """The Discord side: shows a job's status and posts its images."""

    async def job_changed(self, job: Job) -> None: ...

    async def post_images(
        self, job: Job, batch: Sequence[PreparedImage], total: int, *, nonce: str | None = None
    ) -> str | None:
        """Post one message of images (a channel message carries `nonce`); return its link. May raise
        UploadTooLarge or PostRefused."""
        ...

    async def post_link(self, job: Job, image: PreparedImage, total: int, *, nonce: str | None = None) -> str | None:
        ...

    async def find_posted(self, job: Job, part: PendingPart) -> str | None:
        """The link of the message carrying `part` if Discord already accepted it, else None."""
        ...

    async def delivery_finished(self, job: Job, report: DeliveryReport) -> None: ...

    def upload_limit(self, job: Job) -> int: ...

    def lower_upload_limit(self, job: Job, limit: int) -> None: ...

    async def close(self) -> None: ...
