import io
import os
from pathlib import Path

from PIL import Image

from bot.delivery import PreparedImage, download_images, pack, plan_delivery

MB = 1024 * 1024


def image(index: int, size: int) -> PreparedImage:
    return PreparedImage(index, Path(f"/nowhere/{index}.png"), size, f"https://out.example/{index}.png")


def test_pack_respects_ten_files_and_keeps_order():
    batches = pack([image(i, 100) for i in range(1, 16)], budget=10 * MB)
    assert [len(b) for b in batches] == [10, 5]
    assert [i.index for b in batches for i in b] == list(range(1, 16))


def test_pack_respects_the_byte_budget_with_fewest_messages():
    batches = pack([image(i, 3 * MB) for i in range(1, 8)], budget=10 * MB)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert all(sum(i.size for i in b) <= 10 * MB for b in batches)


def noisy_png(path: Path, side: int) -> Path:
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG", compress_level=0)
    return path


async def test_plan_reencodes_an_image_too_large_for_the_limit(tmp_path):
    big = noisy_png(tmp_path / "seedream_job_01.png", 700)  # ~1.4 MB uncompressed
    small = noisy_png(tmp_path / "seedream_job_02.png", 100)
    downloaded = [
        PreparedImage(1, big, big.stat().st_size, "u1"),
        PreparedImage(2, small, small.stat().st_size, "u2"),
    ]
    limit = 256 * 1024 + 1024 * 1024  # 1 MiB of budget after the message overhead
    plan = await plan_delivery(downloaded, limit)
    assert plan.delivered == 2 and plan.reencoded == 1 and not plan.linked
    first = plan.batches[0][0]
    assert first.path.suffix == ".jpg" and first.size <= 1024 * 1024
    with Image.open(first.path) as reopened:
        assert reopened.format == "JPEG"
    assert any("JPEG" in note for note in plan.notes())


async def test_plan_links_what_cannot_fit_and_reports_missing(tmp_path):
    big = noisy_png(tmp_path / "seedream_job_01.png", 400)
    plan = await plan_delivery([PreparedImage(1, big, big.stat().st_size, "https://x/1.png"), 2], 1000)
    assert [i.index for i in plan.linked] == [1]
    assert plan.missing == [2]
    assert plan.delivered == 1


class FakeDownloader:
    def __init__(self, failing: set[str]):
        self.failing = failing
        self.calls = []

    async def download(self, url, *, max_bytes, dest=None):
        self.calls.append(url)
        if url in self.failing:
            raise OSError("gone")
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, "PNG")
        dest.write_bytes(buffer.getvalue())
        return dest


async def test_download_images_keeps_order_and_survives_one_failure(tmp_path):
    urls = [f"https://out/{i}.png" for i in range(1, 6)]
    got = await download_images(FakeDownloader({urls[2]}), urls, tmp_path / "job", "job", max_bytes=MB, concurrency=2)
    assert got[2] == 3
    assert [g.index for g in got if not isinstance(g, int)] == [1, 2, 4, 5]
    assert all(g.path.name == f"seedream_job_{g.index:02d}.png" for g in got if not isinstance(g, int))
