"""The aiohttp transport under httpx: failures keep the meaning the retry rules rely on, cookies stay out."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from aiohttp import web

from bot.runcomfy.transport import AiohttpTransport


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.05)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=AiohttpTransport(max_connections=4)) as http:
        yield http


async def test_a_refused_connection_is_a_connect_error(client):
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{free_port()}/", timeout=2)


async def test_a_slow_answer_is_a_read_timeout(client):
    async def slow(request):
        await asyncio.sleep(1)
        return web.Response(text="late")

    runner, url = await serve(slow)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(2, read=0.1))
    finally:
        await runner.cleanup()


async def test_a_connection_closed_without_an_answer_may_have_reached_the_server(client):
    async def drop(request):
        request.transport.abort()
        raise asyncio.CancelledError

    runner, url = await serve(drop)
    try:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post(url, json={"text": "paid"}, timeout=2)
    finally:
        await runner.cleanup()


async def test_bodies_headers_and_status_pass_through_and_cookies_are_never_sent(client):
    seen = []

    async def echo(request):
        seen.append((request.method, dict(request.headers), await request.read()))
        response = web.json_response({"ok": True}, status=202, headers={"X-Answer": "yes"})
        response.set_cookie("session", "secret")
        return response

    runner, url = await serve(echo)
    try:
        first = await client.post(url + "/a", json={"n": 1}, headers={"Authorization": "Bearer t"})
        client.cookies.clear()  # httpx keeps its own jar; the transport must not keep another
        second = await client.get(url + "/b")
    finally:
        await runner.cleanup()

    assert (first.status_code, first.json(), first.headers["x-answer"]) == (202, {"ok": True}, "yes")
    assert second.status_code == 202
    (method, headers, body), (_, later, _) = seen
    assert (method, body, headers["Authorization"]) == ("POST", b'{"n":1}', "Bearer t")
    assert "Cookie" not in later


async def test_a_body_left_unread_does_not_hold_a_connection(client):
    async def big(request):
        return web.Response(body=b"x" * 500_000)

    runner, url = await serve(big)
    try:
        for _ in range(8):  # more than the 4 connections allowed
            async with client.stream("GET", url) as response:
                assert response.status_code == 200
    finally:
        await runner.cleanup()


async def test_a_whole_small_exchange_without_httpx_objects_asks_for_an_uncompressed_answer():
    seen = []

    async def echo(request):
        seen.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True}, headers={"X-Answer": "yes"})

    runner, url = await serve(echo)
    transport = AiohttpTransport(max_connections=2)
    try:
        status, headers, body = await transport.call(
            "POST", url + "/x", headers={"Authorization": "Bearer t"}, body=b"{}", timeouts=httpx.Timeout(2)
        )
        with pytest.raises(httpx.ConnectError):
            await transport.call("GET", f"http://127.0.0.1:{free_port()}/", headers={}, body=None,
                                 timeouts=httpx.Timeout(2))  # fmt: skip
    finally:
        await transport.aclose()
        await runner.cleanup()

    assert (status, headers["x-answer"], body) == (200, "yes", b'{"ok": true}')
    [(sent, payload)] = seen
    assert (sent["Authorization"], sent["Accept-Encoding"], payload) == ("Bearer t", "identity", b"{}")
