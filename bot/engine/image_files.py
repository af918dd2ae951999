"""Whether a downloaded file really is an image worth posting: a PNG, JPEG or WebP, named after its real format.

Anything a file host serves is untrusted: an HTML error page served as `image.png` must not be posted (or charged).
Pillow reads the header and checks the file's structure (for PNG, every chunk's checksum) without decoding pixels.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def image_suffix(path: Path) -> str | None:
    """Blocking: the file suffix of the image in `path` (".png", ".jpg" or ".webp"), or None if it is none of them."""
    try:
        with Image.open(path, formats=tuple(SUFFIXES)) as image:
            suffix = SUFFIXES.get(image.format or "")
            if suffix is None or image.width < 1 or image.height < 1:
                return None
            image.verify()
            return suffix
    except Exception:  # every kind of broken or hostile file: it is simply not an image
        return None


def _accept(path: Path) -> tuple[Path, int] | None:
    suffix = image_suffix(path)
    if suffix is None:
        path.unlink(missing_ok=True)
        return None
    named = path if path.suffix.lower() == suffix else path.replace(path.with_suffix(suffix))
    return named, named.stat().st_size


async def accept_image(path: Path) -> tuple[Path, int] | None:
    """(`path` renamed to the suffix of its real format, its size in bytes), in one trip to a worker thread; None
    (and the file removed) if it is not an image."""
    return await asyncio.to_thread(_accept, path)
