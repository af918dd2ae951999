"""Per-request overhead of the HTTP stack that does not show in any answer."""

from __future__ import annotations

import sys

from bot.domain.seedream import build_request


class _LookupCounter:
    """A meta path finder that finds nothing and counts the imports it is asked about."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            self.count += 1
        return None


async def test_requests_do_not_search_for_sniffio_each_time(fake_runcomfy, runcomfy_client):
    # httpcore imports sniffio whenever it sets up a lock; without the package that import fails, and is searched
    # for on disk again, on every request.
    rid = (await runcomfy_client.submit(build_request("a lighthouse", 2))).request_id
    await runcomfy_client.status(rid)
    counter = _LookupCounter("sniffio")
    sys.meta_path.insert(0, counter)
    try:
        for _ in range(5):
            await runcomfy_client.status(rid)
            await runcomfy_client.result(rid)
    finally:
        sys.meta_path.remove(counter)

    assert counter.count == 0


async def test_api_calls_travel_on_aiohttp_not_on_httpcore_pool(fake_runcomfy, runcomfy_client, monkeypatch):
    # httpcore's pool looks at every pooled connection on each request (a readability syscall each): several
    # times the CPU of aiohttp's client, which the bot has anyway for Discord.
    import httpcore

    used = []
    real = httpcore.AsyncConnectionPool.handle_async_request

    async def counting(self, request):
        used.append(request)
        return await real(self, request)

    monkeypatch.setattr(httpcore.AsyncConnectionPool, "handle_async_request", counting)
    rid = (await runcomfy_client.submit(build_request("a lighthouse", 2))).request_id
    await runcomfy_client.status(rid)
    fake_runcomfy.complete(rid)
    await runcomfy_client.result(rid)
    await runcomfy_client.cancel(rid)

    assert used == []
    assert len(fake_runcomfy.requests) == 4


async def test_downloads_travel_on_aiohttp_not_on_httpcore_pool(fake_runcomfy, runcomfy_client, monkeypatch, tmp_path):
    import httpcore

    used = []
    real = httpcore.AsyncConnectionPool.handle_async_request

    async def counting(self, request):
        used.append(request)
        return await real(self, request)

    monkeypatch.setattr(httpcore.AsyncConnectionPool, "handle_async_request", counting)
    rid = (await runcomfy_client.submit(build_request("a lighthouse", 2))).request_id
    fake_runcomfy.complete(rid)
    urls = (await runcomfy_client.result(rid)).image_urls
    await runcomfy_client.download(urls[0], max_bytes=1_000_000)
    await runcomfy_client.download(urls[1], max_bytes=1_000_000, dest=tmp_path / "b.png")

    assert used == []
    assert len([r for r in fake_runcomfy.requests if r.site == "output"]) == 2
