"""Downloading a set and posting it within Discord's limits: packing, re-encoding, refusals, links, progress."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from bot.discord.delivery_notes import delivery_notes
from bot.engine.delivery import (
    DeliveryProgress,
    DeliveryReport,
    PendingPart,
    PostRefused,
    PreparedImage,
    SetPoster,
    UploadTooLarge,
    download_images,
    fit_image,
    message_budget,
    part_nonce,
)

MB = 1024 * 1024
LIMIT = 10 * MB


def image(index: int, size: int) -> PreparedImage:
    return PreparedImage(index, Path(f"/nowhere/{index}.png"), size, f"https://out.example/{index}.png")


def noisy_png(path: Path, side: int) -> Path:
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG", compress_level=0)
    return path


class FakeDiscordSide:
    """Takes messages up to `real_limit` bytes; fails the first `failures` posts; records everything."""

    def __init__(self, real_limit: int = LIMIT, failures: list[Exception] | None = None) -> None:
        self.real_limit = real_limit
        self.failures = failures or []
        self.messages: list[list[int]] = []
        self.links: list[int] = []
        self.lowered: list[int] = []
        self.saved: list[str] = []
        self.nonces: list[str] = []
        self.lost_answers = 0  # the next posts are taken, but their answers are lost
        self.accepted: dict[int, str] = {}  # first image index -> link, as reading the channel back shows

    async def post_images(self, batch, nonce) -> str:
        self.nonces.append(nonce)
        if self.failures:
            raise self.failures.pop(0)
        if sum(i.size for i in batch) > self.real_limit:
            raise UploadTooLarge(sum(i.size for i in batch))
        self.messages.append([i.index for i in batch])
        url = self.accepted[batch[0].index] = f"https://discord.example/{len(self.messages)}"
        if self.lost_answers:
            self.lost_answers -= 1
            raise TimeoutError("the answer was lost")
        return url

    async def post_link(self, image, nonce) -> str:
        self.links.append(image.index)
        return "https://discord.example/link"

    async def find_posted(self, part) -> str | None:
        return self.accepted.get(part.first)

    async def save(self, progress: DeliveryProgress) -> None:
        self.saved.append(progress.to_json())

    def poster(self) -> SetPoster:
        return SetPoster(
            self.post_images, self.post_link, self.save, self.lowered.append, retry_pause=0.001,
            find_posted=self.find_posted, nonce_for=lambda first, last: part_nonce("abcdef123456", first, last),
        )  # fmt: skip


async def post(side: FakeDiscordSide, images, *, limit: int = LIMIT, progress=None, asked=None):
    progress = progress or DeliveryProgress()
    count = asked or len(images)
    return await side.poster().post(images, upload_limit=limit, progress=progress, asked=count, returned=len(images))


async def test_fifteen_images_make_two_messages_of_at_most_ten_in_order():
    side = FakeDiscordSide()
    report = await post(side, [image(i, 100) for i in range(1, 16)])
    assert side.messages == [list(range(1, 11)), list(range(11, 16))]
    assert report.delivered == 15 and report.progress.messages == 2
    assert report.progress.first_url == "https://discord.example/1"
    assert delivery_notes(report) == []


async def test_the_byte_budget_gives_the_fewest_messages_in_order():
    side = FakeDiscordSide()
    await post(side, [image(i, 3 * MB) for i in range(1, 8)])
    assert side.messages == [[1, 2, 3], [4, 5, 6], [7]]
    assert message_budget(LIMIT) == LIMIT - 256 * 1024


async def test_a_refused_message_lowers_the_limit_and_the_rest_is_split():
    side = FakeDiscordSide(real_limit=5 * MB)
    report = await post(side, [image(i, 2 * MB) for i in range(1, 6)])
    assert [i for batch in side.messages for i in batch] == [1, 2, 3, 4, 5]
    assert all(len(batch) * 2 * MB <= 5 * MB for batch in side.messages)
    assert report.limit_cut and side.lowered and side.lowered[-1] < LIMIT
    assert any("split into smaller messages" in note for note in delivery_notes(report))


async def test_progress_is_saved_after_each_message_and_a_restart_posts_only_the_rest():
    side = FakeDiscordSide()
    first = await post(side, [image(i, 100) for i in range(1, 16)])
    assert len(side.saved) == 4  # before and after each message
    halfway = DeliveryProgress.from_json(side.saved[1])
    assert (halfway.through, halfway.delivered, halfway.pending) == (10, 10, None)

    again = FakeDiscordSide()
    report = await post(again, [image(i, 100) for i in range(11, 16)], progress=halfway, asked=15)
    assert again.messages == [list(range(11, 16))]
    assert report.delivered == first.delivered == 15
    assert report.progress.first_url == "https://discord.example/1"  # the link to the start of the set is kept


async def test_transient_failures_are_retried_and_refusals_are_not():
    side = FakeDiscordSide(failures=[RuntimeError("502"), RuntimeError("502")])
    report = await post(side, [image(1, 100)])
    assert side.messages == [[1]] and report.failed is None

    refused = FakeDiscordSide(failures=[PostRefused("I'm not allowed to post in that channel")])
    report = await post(refused, [image(1, 100), image(2, 100)])
    assert refused.messages == [] and report.delivered == 0
    assert report.failed == "I'm not allowed to post in that channel"

    broken = FakeDiscordSide(failures=[RuntimeError("down")] * 5)
    report = await post(broken, [image(1, 100)])
    assert report.failed == "Discord kept refusing the upload" and report.delivered == 0


async def test_an_image_too_large_alone_is_reencoded_as_jpeg(tmp_path):
    big = noisy_png(tmp_path / "seedream_job_01.png", 700)  # ~1.4 MB uncompressed
    small = noisy_png(tmp_path / "seedream_job_02.png", 100)
    side = FakeDiscordSide()
    images = [PreparedImage(1, big, big.stat().st_size, "u1"), PreparedImage(2, small, small.stat().st_size, "u2")]
    limit = 256 * 1024 + 1024 * 1024  # 1 MiB of files per message
    report = await post(side, images, limit=limit)
    assert report.delivered == 2 and report.reencoded == 1 and report.linked == 0
    jpeg = tmp_path / "seedream_job_01.jpg"
    assert jpeg.stat().st_size <= 1024 * 1024 and not big.exists()
    with Image.open(jpeg) as reopened:
        assert reopened.format == "JPEG"
    assert any("1 image converted to JPEG" in note for note in delivery_notes(report))


async def test_an_image_that_fits_nowhere_is_linked_in_its_place(tmp_path):
    big = noisy_png(tmp_path / "seedream_job_02.png", 400)
    side = FakeDiscordSide()
    images = [image(1, 100), PreparedImage(2, big, big.stat().st_size, "https://x/2.png"), image(3, 100)]
    report = await post(side, images, limit=1000)
    assert side.messages == [[1], [3]] and side.links == [2]
    assert report.delivered == 3 and report.linked == 1
    assert any("1 image too large to upload even as JPEG" in note for note in delivery_notes(report))


async def test_refitting_a_jpeg_again_keeps_the_file(tmp_path):
    big = noisy_png(tmp_path / "seedream_job_01.png", 300)
    first = await fit_image(PreparedImage(1, big, big.stat().st_size, "u"), 120_000)
    again = await fit_image(first, first.size - 1)
    assert again is not None and again.path.exists() and again.reencoded and again.size < first.size


def test_notes_tell_what_happened_in_words():
    report = DeliveryReport(asked=6, returned=4, progress=DeliveryProgress(through=4, delivered=3), missing=[2])
    assert delivery_notes(report) == [
        "RunComfy made 4 of the 6 images asked for (the model decides how many, up to the number asked).",
        "1 image could not be downloaded from RunComfy: not charged.",
    ]


class FakeDownloader:
    def __init__(self, failing: set[str]):
        self.failing = failing
        self.calls: list[str] = []

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


async def test_download_images_skips_what_was_already_posted(tmp_path):
    urls = [f"https://out/{i}.png" for i in range(1, 6)]
    downloader = FakeDownloader(set())
    got = await download_images(downloader, urls, tmp_path / "job", "job", max_bytes=MB, concurrency=2, skip_through=3)
    assert [g.index for g in got] == [4, 5] and downloader.calls == urls[3:]


@pytest.mark.parametrize("text", [None, "", "not json", "[1]", '{"through": "x"}', '{"delivered": -1}'])
def test_unreadable_progress_starts_over(text):
    assert DeliveryProgress.from_json(text) == DeliveryProgress()


def test_progress_survives_a_round_trip():
    progress = DeliveryProgress(through=10, delivered=9, messages=2, first_url="https://discord.example/1")
    assert DeliveryProgress.from_json(progress.to_json()) == progress


class DiskFullDownloader(FakeDownloader):
    """Like the RunComfy client on a full disk: writing the file fails, a download into memory works."""

    def __init__(self, png: bytes):
        super().__init__(set())
        self.png = png

    async def download(self, url, *, max_bytes, dest=None):
        self.calls.append(url)
        if dest is not None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.png


async def test_images_that_cannot_be_written_to_disk_are_kept_in_memory_and_posted(tmp_path):
    png = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(png, "PNG", compress_level=0)
    urls = [f"https://out/{i}.png" for i in range(1, 4)]

    got = await download_images(DiskFullDownloader(png.getvalue()), urls, tmp_path / "job", "job", max_bytes=MB,
                                concurrency=2)  # fmt: skip

    assert [g.index for g in got] == [1, 2, 3] and all(g.data == png.getvalue() for g in got)
    assert [g.filename for g in got] == ["seedream_job_01.png", "seedream_job_02.png", "seedream_job_03.png"]
    smaller = await fit_image(got[0], budget=len(png.getvalue()) // 3)  # too large: re-encoded in memory
    assert smaller is not None and smaller.reencoded and smaller.filename == "seedream_job_01.jpg"
    assert smaller.size == len(smaller.data) <= len(png.getvalue()) // 3
    assert Image.open(io.BytesIO(smaller.data)).format == "JPEG"


def test_nonces_are_deterministic_short_and_distinct_per_part():
    assert part_nonce("abcdef123456", 1, 10) == part_nonce("abcdef123456", 1, 10)
    assert part_nonce("abcdef123456", 1, 10) != part_nonce("abcdef123456", 11, 15) != part_nonce("x", 11, 15)
    assert len(part_nonce("abcdef123456", 15, 15)) <= 25


async def test_each_part_is_saved_before_it_is_sent_and_cleared_once_accepted():
    side = FakeDiscordSide()
    await post(side, [image(i, 100) for i in range(1, 16)])

    saved = [DeliveryProgress.from_json(text) for text in side.saved]
    assert [(s.through, s.pending and (s.pending.first, s.pending.last)) for s in saved] == [
        (0, (1, 10)), (10, None), (10, (11, 15)), (15, None),
    ]  # fmt: skip
    assert saved[0].pending.nonce == side.nonces[0] == part_nonce("abcdef123456", 1, 10)
    assert DeliveryProgress.from_json(saved[2].to_json()) == saved[2]


async def test_a_message_taken_whose_answer_was_lost_is_found_and_not_posted_again():
    side = FakeDiscordSide()
    side.lost_answers = 1
    report = await post(side, [image(i, 100) for i in range(1, 16)])

    assert side.messages == [list(range(1, 11)), list(range(11, 16))]
    assert report.delivered == 15 and report.progress.first_url == "https://discord.example/1"


async def test_after_a_restart_a_part_discord_already_has_is_counted_not_posted_again():
    side = FakeDiscordSide()
    side.accepted[1] = "https://discord.example/before-the-restart"
    pending = PendingPart(1, 10, 10, part_nonce("abcdef123456", 1, 10), at=1.0)

    report = await post(side, [image(i, 100) for i in range(1, 16)], progress=DeliveryProgress(pending=pending))

    assert side.messages == [list(range(11, 16))]
    assert report.delivered == 15 and report.progress.messages == 2
    assert report.progress.first_url == "https://discord.example/before-the-restart"


async def test_after_a_restart_a_part_discord_does_not_have_is_sent_again_with_its_nonce():
    side = FakeDiscordSide()
    pending = PendingPart(1, 10, 10, "the-nonce-sent-before", at=1.0)

    report = await post(side, [image(i, 100) for i in range(1, 16)], progress=DeliveryProgress(pending=pending))

    assert side.messages == [list(range(1, 11)), list(range(11, 16))]
    assert side.nonces[0] == "the-nonce-sent-before"  # Discord returns the first message if it had it after all
    assert report.delivered == 15
