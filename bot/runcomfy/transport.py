"""An httpx transport on aiohttp: the RunComfy client keeps httpx's API while aiohttp moves the bytes.

Why: per request, httpx's own connection pool (httpcore over anyio) costs 1-3 ms of CPU, several times what
aiohttp's C-accelerated client costs (0.2-0.3 ms; both measured against the fake RunComfy on loopback), and the bot
polls thousands of jobs. aiohttp is installed anyway: discord.py is built on it.

Failures are mapped so that the client's retry rules (see `bot.runcomfy.client`) keep their meaning:
- the connection could not be made (refused, unknown host, TLS refused, connect time-out): `httpx.ConnectError` or
  `httpx.ConnectTimeout`, i.e. the request surely never left;
- anything later (the connection broke, a read time-out, a malformed answer): `httpx.ReadError`,
  `httpx.ReadTimeout` or `httpx.RemoteProtocolError`, i.e. it may have reached the server.
Cookies are neither stored nor sent, bodies are passed on undecoded (httpx decodes them), redirects are left to
httpx, and proxies from the environment are not used.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx

_CHUNK = 64 * 1024


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc) or "connection failed") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or "the server broke the exchange") from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc) or "invalid URL") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with mapped_errors():
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end gives the connection back to the pool; one left unread closes it.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, inside the running loop) with at most `max_connections`."""

    def __init__(self, *, max_connections: int, keepalive_seconds: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive,
                ssl=httpx.create_ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False
            )
        return self._session

    async def call(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeouts: httpx.Timeout
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One small exchange read in full: (status, headers, body), without building httpx's request and response.

        For the API calls, which are many; failures are raised as the same httpx errors as for any request. The
        answer is asked for uncompressed (the session leaves bodies as they come, for httpx to decode).
        """
        with mapped_errors():
            async with self._open().request(
                method,
                url,
                headers={**headers, "Accept-Encoding": "identity"},
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeouts.pool, sock_connect=timeouts.connect, sock_read=timeouts.read
                ),
            ) as response:
                return response.status, response.headers, await response.read()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        try:
            data: bytes | httpx.AsyncByteStream | None = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # type: ignore[assignment]
        with mapped_errors():
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
