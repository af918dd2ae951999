"""Download a job's images and post them within Discord's limits.

Discord takes at most 10 attachments per message and a per-guild number of bytes per message.
Images are streamed to files (never all held in memory), downloaded a few at a time, and posted in
order, packed greedily into as few messages as the limits allow (filling each message before
starting the next is optimal when the order must be kept). An image too large alone is re-encoded
as JPEG; one that does not fit even then is linked, as a last resort.

Delivery has a deadline (the job's): a download still running then is dropped, and a message that fails after
it is not tried again; what was posted is charged, the rest given back.

The upload limit a guild advertises can be wrong: when Discord refuses a message as too large, the
limit is lowered and the rest of the set is packed again. Progress is saved after every message,
so a restart goes on after the last image posted instead of posting the set twice.

Before each message the part it carries is saved too (`PendingPart`: its images and a nonce made from
the job and those images). If the bot dies, or the answer is lost, after Discord accepted the message
but before its progress was saved, the part is looked for in the channel (`find_posted`) before
anything is posted again; a channel message is also sent with its nonce and `enforce_nonce`, so that
Discord itself returns the first message instead of making a second one within a few minutes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.engine.set_images import Downloader, Late, PreparedImage, download_images, fit_image, image_name
from bot.runcomfy.backoff import doubling

log = logging.getLogger(__name__)

MAX_FILES_PER_MESSAGE = 10
# Room for the multipart envelope and the JSON payload next to the files.
MESSAGE_OVERHEAD_BYTES = 256 * 1024
POST_ATTEMPTS = 5
MAX_LIMIT_CUTS = 8  # after this many "too large" answers for one set, what is left is linked
LIMIT_CUT_FACTOR = 0.75


class ProgressStore(Protocol):
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...


class UploadTooLarge(Exception):
    """Discord refused a message as too large: its real upload limit is below `sent_bytes`."""

    def __init__(self, sent_bytes: int) -> None:
        super().__init__(f"Discord refused {sent_bytes} bytes as too large")
        self.sent_bytes = sent_bytes


class PostRefused(Exception):
    """Posting cannot succeed by trying again (missing permissions, say); the message is for members."""


TIME_LIMIT_TEXT = "the job's time limit passed"
KEPT_REFUSING_TEXT = "Discord kept refusing the upload"


@dataclass(frozen=True)
class PendingPart:
    """One message of a set about to be posted: saved before it is sent, cleared once Discord accepted it."""

    first: int  # the index of its first image
    last: int
    count: int  # how many images it carries (or links)
    nonce: str
    at: float  # unix time it was first sent
    link_url: str | None = None  # set when the message links an image instead of uploading it

    @classmethod
    def from_data(cls, data: Any) -> PendingPart | None:
        if data is None:
            return None
        part = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        numbers_ok = all(type(n) is int and n >= 1 for n in (part.first, part.last, part.count))
        if numbers_ok and isinstance(part.nonce, str) and isinstance(part.at, int | float):
            return part
        raise ValueError("not a pending part")


def part_nonce(job_id: str, first: int, last: int) -> str:
    """The same for the same images of the same job, and within Discord's 25 characters."""
    return f"sd{job_id}.{first}.{last}"[:25]


@dataclass
class DeliveryProgress:
    """What was posted so far; saved after every message, and before each with the part being sent."""

    through: int = 0  # the highest image index posted (or linked)
    delivered: int = 0
    messages: int = 0
    first_url: str | None = None
    pending: PendingPart | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> DeliveryProgress:
        try:
            data = json.loads(text) if text else {}
            progress = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
            progress.pending = PendingPart.from_data(data.get("pending"))
            counts = (progress.through, progress.delivered, progress.messages)
            if all(type(n) is int and n >= 0 for n in counts) and isinstance(progress.first_url, str | None):
                return progress
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        log.warning("unreadable delivery progress %r; starting the set over", text)
        return cls()


@dataclass
class DeliveryReport:
    asked: int
    returned: int  # how many images RunComfy made
    progress: DeliveryProgress
    missing: list[int] = field(default_factory=list)  # indexes that could not be downloaded
    late: list[int] = field(default_factory=list)  # indexes still downloading at the deadline
    reencoded: int = 0
    linked: int = 0
    limit_cut: bool = False  # Discord refused a message as too large, so the set was packed again
    failed: str | None = None  # why posting stopped before the end

    @property
    def delivered(self) -> int:
        return self.progress.delivered


def message_budget(upload_limit: int) -> int:
    """Bytes of files one message may carry under `upload_limit`."""
    return max(upload_limit - MESSAGE_OVERHEAD_BYTES, upload_limit // 2)


async def _next_batch(queue: deque[PreparedImage], budget: int) -> list[PreparedImage]:
    """Take the next message's images from the front of `queue`, re-encoding those too large alone.

    Empty when the first image cannot fit even re-encoded: it must be linked.
    """
    batch: list[PreparedImage] = []
    total = 0
    while queue and len(batch) < MAX_FILES_PER_MESSAGE:
        fitted = await fit_image(queue[0], budget)
        if fitted is None:
            break
        queue[0] = fitted
        if batch and total + fitted.size > budget:
            break
        batch.append(queue.popleft())
        total += fitted.size
    return batch


class PostingFailed(Exception):
    """Discord would not take a message even after several attempts; the message is for members."""


PostImages = Callable[[Sequence[PreparedImage], str], Awaitable[str | None]]  # (batch, nonce) -> link
PostLink = Callable[[PreparedImage, str], Awaitable[str | None]]
FindPosted = Callable[[PendingPart], Awaitable[str | None]]


async def _not_found(_part: PendingPart) -> str | None:
    return None


@dataclass
class SetPoster:
    """Posts a downloaded set through the Discord side, saving progress before and after each message."""

    post_images: PostImages  # one message of files; returns its URL; may raise UploadTooLarge or PostRefused
    post_link: PostLink  # one message linking an image that cannot be uploaded
    save_progress: Callable[[DeliveryProgress], Awaitable[None]]
    lower_limit: Callable[[int], None] = lambda _limit: None  # told the limit learnt from a refusal
    retry_pause: float = 1.0
    deadline: float | None = None  # event loop time after which a failed message is not tried again
    find_posted: FindPosted = _not_found  # the link of a part's message if Discord already has it
    nonce_for: Callable[[int, int], str] = lambda first, last: part_nonce("", first, last)
    clock: Callable[[], float] = time.time

    async def post(
        self,
        downloaded: Sequence[PreparedImage | int | Late],
        *,
        upload_limit: int,
        progress: DeliveryProgress,
        asked: int,
        returned: int,
    ) -> DeliveryReport:
        report = DeliveryReport(asked, returned, progress, missing=[i for i in downloaded if isinstance(i, int)])
        report.late = [i.index for i in downloaded if isinstance(i, Late)]
        limit, cuts = upload_limit, 0
        try:
            if progress.pending is not None:
                await self._settle_pending(progress)
            queue = deque(i for i in downloaded if isinstance(i, PreparedImage) and i.index > progress.through)
            while queue:
                batch = [] if cuts > MAX_LIMIT_CUTS else await _next_batch(queue, message_budget(limit))
                if not batch:
                    image = queue.popleft()
                    log.warning("image %d does not fit the upload limit (%d bytes); linking it", image.index, limit)
                    part = await self._announce(progress, image.index, image.index, 1, link_url=image.source_url)
                    url = await self._attempt(part, functools.partial(self.post_link, image, part.nonce))
                    report.linked += 1
                    await self._record(progress, part, url)
                    continue
                part = await self._announce(progress, batch[0].index, batch[-1].index, len(batch))
                try:
                    url = await self._attempt(part, functools.partial(self.post_images, batch, part.nonce))
                except UploadTooLarge as exc:
                    cuts += 1
                    report.limit_cut = True
                    queue.extendleft(reversed(batch))
                    limit = max(1, int(min(limit, exc.sent_bytes) * LIMIT_CUT_FACTOR))
                    log.warning("Discord refused %d bytes as too large; trying with %d", exc.sent_bytes, limit)
                    self.lower_limit(limit)
                    continue
                report.reencoded += sum(1 for image in batch if image.reencoded)
                await self._record(progress, part, url)
        except PostingFailed as exc:
            report.failed = str(exc)
        return report

    async def _settle_pending(self, progress: DeliveryProgress) -> None:
        """A part was being sent when the last run stopped: count it if Discord has it, else send it again."""
        part = progress.pending
        assert part is not None
        url = await self.find_posted(part)
        if url is not None:
            log.info("images %d-%d were already posted before the restart; not posting them again", part.first,
                     part.last)  # fmt: skip
            await self._record(progress, part, url)
        # Not found: the queue starts after `through`, so the part is packed and sent again.

    async def _announce(
        self, progress: DeliveryProgress, first: int, last: int, count: int, *, link_url: str | None = None
    ) -> PendingPart:
        known = progress.pending
        if known is not None and (known.first, known.last, known.count) == (first, last, count):
            part = known  # the same part as before a restart: same nonce, and its first time counts
        else:
            part = PendingPart(first, last, count, self.nonce_for(first, last), self.clock(), link_url)
        progress.pending = part
        await self.save_progress(progress)
        return part

    async def _attempt(self, part: PendingPart, post: Callable[[], Awaitable[str | None]]) -> str | None:
        for attempt in range(1, POST_ATTEMPTS + 1):
            if attempt > 1:  # the last attempt may have reached Discord even though its answer did not reach us
                url = await self.find_posted(part)
                if url is not None:
                    return url
            try:
                return await post()
            except (UploadTooLarge, asyncio.CancelledError):
                raise
            except PostRefused as exc:
                raise PostingFailed(str(exc)) from exc
            except Exception as exc:
                log.warning("posting images failed (attempt %d of %d): %s", attempt, POST_ATTEMPTS, exc)
                pause = doubling(self.retry_pause, 30.0, attempt - 1)
                late = self.deadline is not None and asyncio.get_running_loop().time() + pause > self.deadline
                if attempt == POST_ATTEMPTS or late:
                    url = await self.find_posted(part)  # what Discord took is counted, even when giving up
                    if url is not None:
                        return url
                    raise PostingFailed(TIME_LIMIT_TEXT if late else KEPT_REFUSING_TEXT) from exc
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _record(self, progress: DeliveryProgress, part: PendingPart, url: str | None) -> None:
        progress.through = part.last
        progress.delivered += part.count
        progress.messages += 1
        progress.pending = None
        if progress.first_url is None and url:
            progress.first_url = url
        await self.save_progress(progress)


async def post_set(
    downloader: Downloader,
    observer: Any,
    job: Any,
    urls: Sequence[str],
    folder: Path,
    *,
    meta: ProgressStore,
    max_bytes: int,
    concurrency: int,
    retry_pause: float,
    time_left: float | None = None,
    fresh: bool = False,
) -> DeliveryReport:
    """Download what is not posted yet of a job's set and post it through `observer` (see observer.JobObserver).

    Progress lives in `meta`, so a restart goes on after the last image posted. `fresh`: the job has just
    begun delivering (it was in another state), so there is no progress to read.
    """
    key = f"delivery:{job.id}"
    progress = DeliveryProgress() if fresh else DeliveryProgress.from_json(await meta.get_meta(key))
    if len(urls) > job.images_reserved:
        log.warning("job %s: RunComfy listed %d images for %d asked; only the first %d are posted",
                    job.id, len(urls), job.images_reserved, job.images_reserved)  # fmt: skip
        urls = urls[: job.images_reserved]
    deadline = None if time_left is None else asyncio.get_running_loop().time() + time_left
    downloaded = await download_images(
        downloader,
        urls,
        folder,
        job.id,
        max_bytes=max_bytes,
        concurrency=concurrency,
        skip_through=progress.through,
        deadline=deadline,
    )
    total = len(urls)

    async def save(progress: DeliveryProgress) -> None:
        await meta.set_meta(key, progress.to_json())

    poster = SetPoster(
        post_images=lambda batch, nonce: observer.post_images(job, batch, total, nonce=nonce),
        post_link=lambda image, nonce: observer.post_link(job, image, total, nonce=nonce),
        save_progress=save,
        lower_limit=lambda limit: observer.lower_upload_limit(job, limit),
        retry_pause=retry_pause,
        deadline=deadline,
        find_posted=lambda part: observer.find_posted(job, part),
        nonce_for=lambda first, last: part_nonce(job.id, first, last),
    )
    limit, asked = observer.upload_limit(job), job.images_reserved
    return await poster.post(downloaded, upload_limit=limit, progress=progress, asked=asked, returned=total)


__all__ = [
    "DeliveryProgress", "DeliveryReport", "Late", "PendingPart", "PostRefused", "PostingFailed", "PreparedImage",
    "SetPoster", "UploadTooLarge", "download_images", "fit_image", "image_name", "message_budget", "part_nonce",
    "post_set",
]  # fmt: skip
