"""The documented contract the fake RunComfy follows: the model's input schema, error bodies, and output images."""

from __future__ import annotations

import functools
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from PIL import Image

MODEL_PATH = "bytedance/seedream-4-0/sequential"
IMAGE_SIZES = (
    "2048:2048 (1:1)", "2304:1728 (4:3)", "1728:2304 (3:4)", "2560:1440 (16:9)",
    "1440:2560 (9:16)", "2496:1664 (3:2)", "1664:2496 (2:3)", "3024:1296 (21:9)",
)  # fmt: skip
DEFAULT_ERRORS = {  # status -> (error_code, error_message) of the error body `fail_next` sends by default
    400: (400001, "Invalid request"), 401: (400004, "Invalid or expired API token"), 402: (400002, "Low balance"),
    403: (403001, "Permission denied"), 404: (404001, "Request not found or expired"), 422: (None, "Invalid input"),
    429: (None, "Too many requests"), 200: (500001, "Internal server error"),
}  # fmt: skip


def error_body(code: int | None, message: str) -> dict[str, Any]:
    return {"error_message": message} | ({"error_code": code} if code is not None else {})


@functools.lru_cache(maxsize=16)
def make_png(size: int, seed: int = 0) -> bytes:
    """A valid PNG of about `size` bytes: random-noise pixels stored uncompressed, so the size is predictable."""
    width = 64
    height = max(1, round((size - 70) / (1 + 3 * width)))  # ~70 bytes of signature, chunk headers and zlib framing
    buffer = io.BytesIO()
    noise = random.Random(seed).randbytes(width * height * 3)
    Image.frombytes("RGB", (width, height), noise).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


async def json_body(request: web.Request) -> Any:
    """The request's JSON body; its text if it is not JSON; None if there is no body."""
    text = await request.text() if request.body_exists else ""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_SCHEMA = {  # the model's input schema: property -> check; "text" is required
    "text": lambda v: isinstance(v, str) and 0 < len(v) <= 600,
    "sequential_image_generation_options": lambda v: type(v) is int and 1 <= v <= 15,
    "image_size": lambda v: v in IMAGE_SIZES,
    "optimize_prompt_options": lambda v: v in ("fast", "standard"),
    "seed": lambda v: type(v) is int,
    "sequential_image_generation": lambda v: isinstance(v, str),
}


def validate(body: Any) -> list[str]:
    """Problems with a submit body, against the model's input schema."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    bad = [f"{key}: invalid value {body[key]!r}" for key, ok in _SCHEMA.items() if key in body and not ok(body[key])]
    return bad if "text" in body else ["text: required", *bad]
