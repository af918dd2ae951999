"""Download a job's images and plan how to post them within Discord's limits.

Discord takes at most 10 attachments per message and a per-guild number of bytes per message.
Images are streamed to files (never all held in memory), kept in order, packed greedily into as
few messages as the limits allow, re-encoded as JPEG when one image alone is too large, and
linked as a last resort when even that does not fit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

log = logging.getLogger(__name__)

MAX_FILES_PER_MESSAGE = 10
# Room for the multipart envelope and the JSON payload next to the files.
MESSAGE_OVERHEAD_BYTES = 256 * 1024
JPEG_QUALITIES = (92, 85, 75)


class Downloader(Protocol):
    async def download(self, url: str, *, max_bytes: int, dest: Path | None = None) -> bytes | Path: ...


@dataclass(frozen=True)
class PreparedImage:
    index: int  # 1-based position in the set
    path: Path | None  # None when the image is only linked
    size: int
    source_url: str
    reencoded: bool = False

    @property
    def filename(self) -> str:
        return self.path.name if self.path else ""


@dataclass
class DeliveryPlan:
    batches: list[list[PreparedImage]] = field(default_factory=list)
    linked: list[PreparedImage] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # indexes that could not be downloaded

    @property
    def delivered(self) -> int:
        return sum(len(batch) for batch in self.batches) + len(self.linked)

    @property
    def reencoded(self) -> int:
        return sum(1 for batch in self.batches for image in batch if image.reencoded)

    def notes(self) -> list[str]:
        """What a member should be told about how the set was posted."""
        notes = []
        if self.reencoded:
            notes.append(f"{self.reencoded} image(s) were converted to JPEG to fit this server's upload limit.")
        if self.linked:
            notes.append(
                f"{len(self.linked)} image(s) were too large to upload even as JPEG; they are linked instead "
                "(the links expire after about a day)."
            )
        if self.missing:
            notes.append(f"{len(self.missing)} image(s) could not be downloaded; they were not charged.")
        return notes


def image_name(job_id: str, index: int, suffix: str = ".png") -> str:
    return f"seedream_{job_id}_{index:02d}{suffix}"


async def download_images(
    client: Downloader,
    urls: Sequence[str],
    folder: Path,
    job_id: str,
    *,
    max_bytes: int,
    concurrency: int,
) -> list[PreparedImage | int]:
    """Download every URL into `folder`, at most `concurrency` at a time, keeping the order.

    Returns a PreparedImage per success, or the 1-based index of each image that failed.
    """
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    gate = asyncio.Semaphore(concurrency)

    async def fetch(index: int, url: str) -> PreparedImage | int:
        dest = folder / image_name(job_id, index)
        async with gate:
            try:
                await client.download(url, max_bytes=max_bytes, dest=dest)
            except Exception as exc:  # one lost image must not lose the rest of the set
                log.warning("image %d of job %s could not be downloaded: %s", index, job_id, exc)
                return index
        size = (await asyncio.to_thread(dest.stat)).st_size
        return PreparedImage(index, dest, size, url)

    return list(await asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls, start=1))))


def _reencode_jpeg(path: Path, budget: int) -> Path | None:
    """Blocking: write a JPEG next to `path` that fits `budget` bytes, or None if none does."""
    target = path.with_suffix(".jpg")
    with Image.open(path) as source:
        image = source.convert("RGB")
    try:
        for scale in (1.0, 0.75, 0.5):
            resized = image if scale == 1.0 else image.resize((int(image.width * scale), int(image.height * scale)))
            for quality in JPEG_QUALITIES:
                resized.save(target, "JPEG", quality=quality, optimize=True)
                if target.stat().st_size <= budget:
                    return target
    finally:
        image.close()
    target.unlink(missing_ok=True)
    return None


async def fit_image(image: PreparedImage, budget: int) -> PreparedImage | None:
    """The image itself if it fits `budget`, else a re-encoded copy, else None."""
    if image.size <= budget or image.path is None:
        return image
    try:
        smaller = await asyncio.to_thread(_reencode_jpeg, image.path, budget)
    except OSError as exc:
        log.warning("could not re-encode %s: %s", image.path.name, exc)
        return None
    if smaller is None:
        return None
    size = (await asyncio.to_thread(smaller.stat)).st_size
    await asyncio.to_thread(image.path.unlink, missing_ok=True)
    return PreparedImage(image.index, smaller, size, image.source_url, reencoded=True)


def pack(
    images: Sequence[PreparedImage], budget: int, max_files: int = MAX_FILES_PER_MESSAGE
) -> list[list[PreparedImage]]:
    """Split images, in order, into the fewest messages of at most `max_files` and `budget` bytes.

    Filling each message before starting the next is optimal when the order must be kept.
    """
    batches: list[list[PreparedImage]] = []
    current: list[PreparedImage] = []
    total = 0
    for image in images:
        if current and (len(current) >= max_files or total + image.size > budget):
            batches.append(current)
            current, total = [], 0
        current.append(image)
        total += image.size
    if current:
        batches.append(current)
    return batches


async def plan_delivery(downloaded: Sequence[PreparedImage | int], upload_limit: int) -> DeliveryPlan:
    """Fit each image under the upload limit and pack them into messages."""
    budget = max(upload_limit - MESSAGE_OVERHEAD_BYTES, upload_limit // 2)
    plan = DeliveryPlan()
    uploadable: list[PreparedImage] = []
    for item in downloaded:
        if isinstance(item, int):
            plan.missing.append(item)
            continue
        fitted = await fit_image(item, budget)
        if fitted is None:
            plan.linked.append(PreparedImage(item.index, None, item.size, item.source_url))
        else:
            uploadable.append(fitted)
    plan.batches = pack(uploadable, budget)
    return plan
