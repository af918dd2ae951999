"""Downloads are fenced: https to public addresses only (checked where the connection is made), or RunComfy's own
base URL origin; at most 3 redirects, each checked. No test resolves a public name: resolvers are injected."""

from __future__ import annotations

import socket
import time

import pytest
import yarl
from aiohttp import web

from bot.domain.seedream import build_request
from bot.runcomfy import download_fence
from bot.runcomfy.client import DownloadRefused, RunComfyClient, TransportError
from bot.runcomfy.download_fence import DownloadFence, FencedResolver, is_public_address
from tests.fakes.runcomfy import FakeRunComfy, make_png
from tests.fixtures.runcomfy import fast_retry_policy

NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "100.64.0.1", "240.0.0.1", "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1",
    "ff02::1", "fec0::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
    "2002:7f00:1::1", "not-an-address",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert is_public_address(address)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/outputs/a.png", True),  # exactly the base URL's origin
        ("https://cdn.example/a.png", True),
        ("http://cdn.example/a.png", False),
        ("http://127.0.0.1:8001/outputs/a.png", False),
        ("https://127.0.0.1:8000/outputs/a.png", False),  # the base host and port, but another scheme
        ("ftp://cdn.example/a.png", False),
        ("https://8.8.8.8/a.png", True),
        ("https://10.0.0.1/a.png", False),  # an address is checked with the URL: nothing resolves it
        ("https://[::1]:8443/a.png", False),
        ("https://[::ffff:169.254.169.254]/a.png", False),
    ],
)
def test_url_rules(url, allowed):
    fence = DownloadFence("http://127.0.0.1:8000")
    if allowed:
        fence.check_url(yarl.URL(url))
    else:
        with pytest.raises(DownloadRefused):
            fence.check_url(yarl.URL(url))


def resolver_for(table, asked=None):
    async def resolve(host, port):
        if asked is not None:
            asked.append(host)
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1"], ["8.8.8.8", "10.0.0.7"], ["::ffff:192.168.0.1"], ["169.254.169.254"], []]
)
async def test_a_name_resolving_to_any_non_public_address_is_refused(addresses):
    resolver = FencedResolver(("127.0.0.1", 8000), resolver=resolver_for({"cdn.example": addresses}))
    with pytest.raises(DownloadRefused):
        await resolver.resolve("cdn.example", 443)


async def test_the_connector_is_given_the_checked_addresses_themselves():
    resolver = FencedResolver(None, resolver=resolver_for({"cdn.example": ["8.8.4.4", "2001:4860:4860::8888"]}))
    results = await resolver.resolve("cdn.example", 443)
    assert [(r["host"], r["port"], r["family"]) for r in results] == [
        ("8.8.4.4", 443, socket.AF_INET),
        ("2001:4860:4860::8888", 443, socket.AF_INET6),
    ]
    assert all(r["hostname"] == "cdn.example" and r["flags"] & socket.AI_NUMERICHOST for r in results)


async def test_the_trusted_base_url_host_and_port_are_not_checked(monkeypatch):
    async def system(host, port):
        return ["127.0.0.1"]

    monkeypatch.setattr(download_fence, "resolve_host", system)
    resolver = FencedResolver(("runcomfy-proxy", 8000), resolver=resolver_for({"runcomfy-proxy": ["127.0.0.1"]}))
    assert [r["host"] for r in await resolver.resolve("runcomfy-proxy", 8000)] == ["127.0.0.1"]
    with pytest.raises(DownloadRefused):
        await resolver.resolve("runcomfy-proxy", 8001)


async def test_a_connection_goes_to_the_checked_address_without_resolving_again(monkeypatch):
    # 127.0.0.1 counts as public here, so the fence's own session can reach a local server under a made-up name:
    # the name resolves nowhere else, so the answer proves the connection went to the address the fence checked.
    hosts = []

    async def serve(request):
        hosts.append(request.host)
        return web.Response(body=b"ok")

    app = web.Application()
    app.router.add_get("/a.png", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(download_fence, "is_public_address", lambda address: address == "127.0.0.1")
    asked = []
    fence = DownloadFence("https://model-api.example", resolver=resolver_for({"images.invalid": ["127.0.0.1"]}, asked))
    try:
        async with fence.session() as session:
            for _ in range(2):
                async with session.get(f"http://images.invalid:{port}/a.png", allow_redirects=False) as response:
                    assert await response.read() == b"ok"
    finally:
        await runner.cleanup()
    assert hosts == [f"images.invalid:{port}"] * 2
    assert asked == ["images.invalid"]  # once: the checked answer is what the connector keeps using


async def finished_urls(fake, client, images=2):
    rid = (await client.submit(build_request("a kite", images))).request_id
    return (await client.result(rid)).image_urls


async def test_a_redirect_to_another_local_port_is_refused(fake_runcomfy, runcomfy_client, internal_service):
    internal, hits = internal_service
    url = (await finished_urls(fake_runcomfy, runcomfy_client))[0]
    fake_runcomfy.output_redirects = [f"{internal}/admin/secret.png"]

    with pytest.raises(DownloadRefused):
        await runcomfy_client.download(url, max_bytes=100_000)
    assert hits == []
    assert fake_runcomfy.counts["download"] == 1  # refused: not retried


async def test_an_output_host_on_another_local_port_is_refused(runcomfy_token):
    async with FakeRunComfy(token=runcomfy_token, separate_output_host=True) as fake:
        async with RunComfyClient(fake.token, fake.base_url, retry=fast_retry_policy()) as client:
            url = (await finished_urls(fake, client))[0]
            assert not url.startswith(fake.base_url)
            with pytest.raises(DownloadRefused):
                await client.download(url, max_bytes=100_000)
        assert [r for r in fake.requests if r.site == "output"] == []


async def test_redirects_within_the_base_origin_are_followed_up_to_three(fake_runcomfy, runcomfy_client):
    first, second = await finished_urls(fake_runcomfy, runcomfy_client)
    fake_runcomfy.output_redirects = [second] * 3
    assert await runcomfy_client.download(first, max_bytes=100_000) == make_png(2048, 2)

    fake_runcomfy.output_redirects = [second] * 4
    with pytest.raises(DownloadRefused, match="more than 3"):
        await runcomfy_client.download(first, max_bytes=100_000)


async def test_a_redirect_to_plain_http_elsewhere_is_refused(fake_runcomfy, runcomfy_client):
    url = (await finished_urls(fake_runcomfy, runcomfy_client))[0]
    fake_runcomfy.output_redirects = ["http://cdn.example/a.png"]
    with pytest.raises(DownloadRefused, match="not https"):
        await runcomfy_client.download(url, max_bytes=100_000)


async def test_a_name_resolving_to_loopback_is_refused_through_the_client(fake_runcomfy):
    resolved = []

    async def resolver(host, port):
        resolved.append(host)
        return ["127.0.0.1"]  # what a rebinding name might answer

    async with RunComfyClient(fake_runcomfy.token, fake_runcomfy.base_url, resolver=resolver) as client:
        with pytest.raises(DownloadRefused):
            await client.download("https://images.example/a.png", max_bytes=100_000)
    assert resolved == ["images.example"]


async def test_a_dripping_download_stops_at_its_deadline(fake_runcomfy):
    fake_runcomfy.drip[1] = 0.05  # ~2 KB at 20 bytes a second: far longer than the read time-out allows per byte
    async with RunComfyClient(
        fake_runcomfy.token, fake_runcomfy.base_url, retry=fast_retry_policy(), download_timeout=0.6
    ) as client:
        url = (await finished_urls(fake_runcomfy, client))[0]
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"within 0\.6 s"):
            await client.download(url, max_bytes=100_000)
    assert time.monotonic() - started < 3.0
