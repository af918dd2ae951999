"""A job's images on their way to Discord: downloaded (to files, or held in memory when the disk is full),
checked to be real images, and re-encoded as JPEG when one is too large to upload as it is."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

from bot.engine.image_files import accept_image, image_suffix

log = logging.getLogger(__name__)

JPEG_QUALITIES = (92, 85, 75)
JPEG_SCALES = (1.0, 0.75, 0.5)


class Downloader(Protocol):
    async def download(self, url: str, *, max_bytes: int, dest: Path | None = None) -> bytes | Path: ...


@dataclass(frozen=True)
class PreparedImage:
    index: int  # 1-based position in the set
    path: Path | None  # None when the image is only linked
    size: int
    source_url: str
    reencoded: bool = False
    data: bytes | None = field(default=None, repr=False)  # held in memory (the file could not be written)

    @property
    def filename(self) -> str:
        return self.path.name if self.path else ""


@dataclass(frozen=True)
class Late:
    """An image still downloading when the delivery deadline passed."""

    index: int


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
    skip_through: int = 0,
    deadline: float | None = None,
) -> list[PreparedImage | int | Late]:
    """Download the images after index `skip_through` into `folder`, at most `concurrency` at a time, in order.

    Returns a PreparedImage per success, the 1-based index of each image that failed, and `Late(index)` for each
    one not downloaded by `deadline` (event loop time).
    """
    try:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        to_disk = True
    except OSError as exc:
        log.warning("job %s: the download folder cannot be made (%s); keeping the images in memory", job_id, exc)
        to_disk = False
    gate = asyncio.Semaphore(concurrency)

    async def fetch(index: int, url: str) -> PreparedImage | int | Late:
        dest = folder / image_name(job_id, index)
        data = None
        try:
            async with asyncio.timeout_at(deadline), gate:
                if to_disk:
                    try:
                        await client.download(url, max_bytes=max_bytes, dest=dest)
                    except OSError as exc:  # a full disk must not lose the image: hold it in memory instead
                        log.warning("image %d of job %s cannot be written (%s); kept in memory", index, job_id, exc)
                        data = await client.download(url, max_bytes=max_bytes)
                else:
                    data = await client.download(url, max_bytes=max_bytes)
        except TimeoutError:
            log.warning("image %d of job %s was still downloading at the job's deadline", index, job_id)
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            return Late(index)
        except Exception as exc:  # one lost image must not lose the rest of the set
            log.warning("image %d of job %s could not be downloaded: %s", index, job_id, exc)
            return index
        if isinstance(data, bytes):
            suffix = await asyncio.to_thread(image_suffix, io.BytesIO(data))  # type: ignore[arg-type]
            if suffix is not None:
                return PreparedImage(index, dest.with_suffix(suffix), len(data), url, data=data)
            accepted = None
        else:
            accepted = await accept_image(dest)
        if accepted is None:
            log.warning("image %d of job %s is not a PNG, JPEG or WebP image; it is not posted", index, job_id)
            return index
        image, size = accepted
        return PreparedImage(index, image, size, url)

    wanted = [(index, url) for index, url in enumerate(urls, start=1) if index > skip_through]
    return list(await asyncio.gather(*(fetch(index, url) for index, url in wanted)))


def _reencode_jpeg(path: Path, budget: int) -> Path | None:
    """Blocking: write a JPEG next to `path` that fits `budget` bytes, or None if none does."""
    target = path.with_name(path.stem + ".fit.jpg")
    with Image.open(path) as source:
        image = source.convert("RGB")
    try:
        for scale in JPEG_SCALES:
            size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            resized = image if scale == 1.0 else image.resize(size)
            for quality in JPEG_QUALITIES:
                resized.save(target, "JPEG", quality=quality, optimize=True)
                if target.stat().st_size <= budget:
                    final = path.with_suffix(".jpg")
                    target.replace(final)
                    return final
    finally:
        image.close()
    target.unlink(missing_ok=True)
    return None


def _reencode_jpeg_bytes(data: bytes, budget: int) -> bytes | None:
    """Blocking: the JPEG of `data` (an image in memory) that fits `budget` bytes, or None if none does."""
    with Image.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    try:
        for scale in JPEG_SCALES:
            size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
            resized = image if scale == 1.0 else image.resize(size)
            for quality in JPEG_QUALITIES:
                out = io.BytesIO()
                resized.save(out, "JPEG", quality=quality, optimize=True)
                if out.tell() <= budget:
                    return out.getvalue()
    finally:
        image.close()
    return None


async def fit_image(image: PreparedImage, budget: int) -> PreparedImage | None:
    """The image itself if it fits `budget`, else a re-encoded copy, else None."""
    if image.size <= budget or image.path is None:
        return image
    if image.data is not None:
        try:
            jpeg = await asyncio.to_thread(_reencode_jpeg_bytes, image.data, budget)
        except OSError as exc:
            log.warning("could not re-encode %s: %s", image.path.name, exc)
            return None
        if jpeg is None:
            return None
        return PreparedImage(
            image.index, image.path.with_suffix(".jpg"), len(jpeg), image.source_url, reencoded=True, data=jpeg
        )
    try:
        smaller = await asyncio.to_thread(_reencode_jpeg, image.path, budget)
    except OSError as exc:
        log.warning("could not re-encode %s: %s", image.path.name, exc)
        return None
    if smaller is None:
        return None
    size = (await asyncio.to_thread(smaller.stat)).st_size
    if smaller != image.path:
        await asyncio.to_thread(image.path.unlink, missing_ok=True)
    return PreparedImage(image.index, smaller, size, image.source_url, reencoded=True)
