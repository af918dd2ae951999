"""Only PNG, JPEG and WebP files count as images, named after their real format."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.engine.image_files import accept_image, image_suffix
from tests.fakes.runcomfy import make_png


def encoded(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 120, 200)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "suffix"), [
    (make_png(3000), ".png"), (encoded("JPEG"), ".jpg"), (encoded("WEBP"), ".webp"),
    (encoded("GIF"), None), (encoded("BMP"), None),
    (b"<!doctype html><title>Not Found</title>", None), (b"", None),
    (make_png(3000)[:1500], None),  # cut short: the header is fine, the chunks are not
    (make_png(3000)[:-20] + b"\0" * 20, None),  # a damaged end
])  # fmt: skip
def test_image_suffix(tmp_path, data, suffix):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert image_suffix(path) == suffix


async def test_accept_image_renames_to_the_real_format_and_removes_what_is_not_an_image(tmp_path):
    jpeg = tmp_path / "a.png"
    jpeg.write_bytes(encoded("JPEG"))
    page = tmp_path / "b.png"
    page.write_bytes(b"<html>nope</html>")

    assert await accept_image(jpeg) == (tmp_path / "a.jpg", len(encoded("JPEG")))
    assert await accept_image(page) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]
