"""Downloads of outputs: bytes or files, size caps, expiry, retries, and no token ever sent to output hosts."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

import bot.runcomfy.client
from bot.domain.seedream import build_request
from bot.runcomfy.client import DownloadTooLargeError, InvalidInputError, NotFoundError, RunComfyClient
from tests.fakes.runcomfy import make_png
from tests.fixtures.runcomfy import fast_retry_policy


async def finished_job(fake, client, images: int = 3, image_bytes: int = 4096) -> tuple[str, tuple[str, ...]]:
    fake.next_job(image_bytes=image_bytes)
    rid = (await client.submit(build_request("koi in a pond", images))).request_id
    return rid, (await client.result(rid)).image_urls


async def test_download_returns_the_png_bytes(fake_runcomfy, runcomfy_client):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=20_000)

    data = await runcomfy_client.download(urls[1], max_bytes=1_000_000)

    assert data == make_png(20_000, 2)
    assert abs(len(data) - 20_000) < 200
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        assert image.format == "PNG"


async def test_download_to_a_file(fake_runcomfy, runcomfy_client, tmp_path):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=3_000_000)
    dest = tmp_path / "one.png"

    saved = await runcomfy_client.download(urls[0], max_bytes=10_000_000, dest=dest)

    assert saved == dest
    assert dest.read_bytes() == make_png(3_000_000, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]


async def test_file_writes_happen_off_the_event_loop(fake_runcomfy, runcomfy_client, tmp_path, monkeypatch):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=2_500_000)
    offloaded = []
    to_thread = asyncio.to_thread

    async def recording_to_thread(func, *args, **kwargs):
        offloaded.append(getattr(func, "__name__", repr(func)))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(bot.runcomfy.client.asyncio, "to_thread", recording_to_thread)
    await runcomfy_client.download(urls[0], max_bytes=10_000_000, dest=tmp_path / "a.png")

    file_work = [name for name in offloaded if name != "make_png"]  # the fake shares the asyncio module
    assert file_work[0] == "open" and file_work[-1] == "_finish_file"
    assert set(file_work[1:-1]) == {"write"} and len(file_work) >= 4  # written in pieces, not held whole


async def test_token_never_reaches_the_output_host(fake_runcomfy, runcomfy_client, tmp_path):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client)
    await runcomfy_client.download(urls[0], max_bytes=1_000_000)
    await runcomfy_client.download(urls[1], max_bytes=1_000_000, dest=tmp_path / "b.png")

    outputs = [r for r in fake_runcomfy.requests if r.site == "output"]
    api = [r for r in fake_runcomfy.requests if r.site == "api"]
    assert len(outputs) == 2 and api
    assert all(r.headers.get("Authorization") == f"Bearer {fake_runcomfy.token}" for r in api)
    for request in outputs:
        assert "Authorization" not in request.headers
        assert fake_runcomfy.token not in str(dict(request.headers))


async def test_token_not_sent_even_if_a_shared_client_carries_one(fake_runcomfy):
    token = fake_runcomfy.token
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}", "Cookie": "s=1"}) as shared:
        async with RunComfyClient(token, fake_runcomfy.base_url, http=shared, retry=fast_retry_policy()) as client:
            _, urls = await finished_job(fake_runcomfy, client)
            await client.download(urls[0], max_bytes=1_000_000)
    [output] = [r for r in fake_runcomfy.requests if r.site == "output"]
    assert "Authorization" not in output.headers and "Cookie" not in output.headers


async def test_credentials_written_in_an_output_url_are_not_sent(fake_runcomfy, runcomfy_client):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client)
    with_credentials = urls[0].replace("http://", "http://someone:secret@")

    assert await runcomfy_client.download(with_credentials, max_bytes=1_000_000) == make_png(4096, 1)
    [output] = [r for r in fake_runcomfy.requests if r.site == "output"]
    assert "Authorization" not in output.headers


async def test_size_cap_from_content_length(fake_runcomfy, runcomfy_client, tmp_path):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=50_000)

    with pytest.raises(DownloadTooLargeError) as caught:
        await runcomfy_client.download(urls[0], max_bytes=10_000, dest=tmp_path / "big.png")

    assert caught.value.limit == 10_000 and caught.value.size == len(make_png(50_000, 1))
    assert list(tmp_path.iterdir()) == []
    assert len([r for r in fake_runcomfy.requests if r.site == "output"]) == 1  # not retried


@pytest.mark.parametrize("to_file", [False, True])
async def test_size_cap_while_streaming_without_content_length(fake_runcomfy, runcomfy_client, tmp_path, to_file):
    fake_runcomfy.chunked_downloads = True
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=300_000)
    dest = tmp_path / "big.png" if to_file else None

    with pytest.raises(DownloadTooLargeError) as caught:
        await runcomfy_client.download(urls[0], max_bytes=100_000, dest=dest)

    assert caught.value.size is None
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial piece is left


async def test_exact_size_is_allowed(fake_runcomfy, runcomfy_client):
    fake_runcomfy.chunked_downloads = True
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, image_bytes=30_000)
    size = len(make_png(30_000, 1))

    assert len(await runcomfy_client.download(urls[0], max_bytes=size)) == size


async def test_expired_outputs_are_not_found(fake_runcomfy, runcomfy_client):
    rid, urls = await finished_job(fake_runcomfy, runcomfy_client)
    fake_runcomfy.expire(rid)

    with pytest.raises(NotFoundError) as caught:
        await runcomfy_client.download(urls[0], max_bytes=1_000_000)

    assert caught.value.status == 404
    assert len([r for r in fake_runcomfy.requests if r.site == "output"]) == 1


async def test_outputs_expire_after_a_while(fake_runcomfy, runcomfy_client):
    fake_runcomfy.expire_after = 0.1
    _, urls = await finished_job(fake_runcomfy, runcomfy_client)
    assert await runcomfy_client.download(urls[0], max_bytes=1_000_000)
    await asyncio.sleep(0.15)
    with pytest.raises(NotFoundError):
        await runcomfy_client.download(urls[0], max_bytes=1_000_000)


async def test_download_retries_server_errors_and_dropped_connections(fake_runcomfy, runcomfy_client):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client)
    fake_runcomfy.fail_next("download", 503)
    fake_runcomfy.drop_next("download")

    data = await runcomfy_client.download(urls[2], max_bytes=1_000_000)

    assert data == make_png(4096, 3)
    assert len([r for r in fake_runcomfy.requests if r.site == "output"]) == 3


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "javascript:alert(1)", "x.png"])
async def test_only_http_urls_are_fetched(fake_runcomfy, runcomfy_client, url):
    with pytest.raises(InvalidInputError):
        await runcomfy_client.download(url, max_bytes=1000)
    assert fake_runcomfy.requests == []


async def test_many_downloads_at_once(fake_runcomfy, runcomfy_client):
    _, urls = await finished_job(fake_runcomfy, runcomfy_client, images=15, image_bytes=8000)

    blobs = await asyncio.gather(*(runcomfy_client.download(url, max_bytes=100_000) for url in urls))

    assert blobs == [make_png(8000, i) for i in range(1, 16)]
