"""Downloads of RunComfy outputs: fenced, size-capped, deadline-bound, streamed to a file off the event loop.

An output URL comes from RunComfy's answer, so it is untrusted: it and every redirect hop go through the fence
(`download_fence`), at most 3 redirects are followed, and no API header (nor the token, nor credentials written
in the URL) is ever sent. Retries follow the client's policy (429, 5xx, transport errors), all within one total
deadline per image. The bytes travel on aiohttp, with the fence's own connection pool: per download it costs a
fraction of the CPU of httpx's pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import IO

import aiohttp
import httpx
import yarl

from bot.runcomfy.download_fence import MAX_REDIRECTS, DownloadFence, Resolver
from bot.runcomfy.errors import (
    DownloadRefused,
    DownloadTooLargeError,
    InvalidInputError,
    TransportError,
    download_answer_error,
    is_retryable,
    retry_after_of,
    transport_error,
)
from bot.runcomfy.retry import RetryPolicy
from bot.runcomfy.transport import mapped_errors

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_DOWNLOAD_WRITE_CHUNK = 1024 * 1024
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


def _loggable_url(url: str) -> str:
    """An output URL without its query string (signed URLs carry credentials there)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class OutputDownloader:
    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryPolicy,
        timeout: httpx.Timeout,
        total_timeout: float,
        secrets: Iterable[str],
        resolver: Resolver | None = None,
    ) -> None:
        self._retry = retry
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout.pool, sock_connect=timeout.connect, sock_read=timeout.read
        )
        self._download_timeout = total_timeout
        self._secrets = tuple(secrets)
        resolving = {"resolver": resolver} if resolver else {}
        self._fence = DownloadFence(base_url, resolve_timeout=timeout.connect, **resolving)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._fence.session()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def download(self, url: str, *, max_bytes: int, dest: pathlib.Path | None = None) -> bytes | pathlib.Path:
        """Fetch an output: bytes, or the file `dest` (written off the event loop, replaced only when complete).

        Raises `DownloadRefused` for a URL outside the fence, `TransportError` past the download deadline.
        """
        try:
            start = yarl.URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError("output URL is malformed") from exc
        if start.scheme.lower() not in ("http", "https") or not start.raw_host:
            raise InvalidInputError("output URL is not http or https")

        async def attempt() -> bytes | pathlib.Path:
            return await self._download_once(start, max_bytes, dest)

        try:
            async with asyncio.timeout(self._download_timeout):
                result = await self._retry.run(attempt, is_retryable=is_retryable, retry_after=retry_after_of)
        except TimeoutError:
            raise TransportError(
                f"download did not finish within {self._download_timeout:g} s", may_have_reached_server=True
            ) from None
        log.debug("runcomfy download %s done", _loggable_url(url))
        return result

    async def _download_once(self, url: yarl.URL, max_bytes: int, dest: pathlib.Path | None) -> bytes | pathlib.Path:
        for _hop in range(MAX_REDIRECTS + 1):
            self._fence.check_url(url)
            try:
                with mapped_errors():
                    response = await self._open().get(url.with_user(None), allow_redirects=False, timeout=self._timeout)
            except httpx.HTTPError as exc:
                raise transport_error(exc, secrets=self._secrets) from exc
            location = response.headers.get("Location") if response.status in _REDIRECT_STATUSES else None
            if location is None:
                return await self._read_answer(response, max_bytes, dest)
            response.close()
            try:
                url = response.url.join(yarl.URL(location))
            except (ValueError, TypeError) as exc:
                raise DownloadRefused("output redirect has a malformed location") from exc
        raise DownloadRefused(f"output URL redirects more than {MAX_REDIRECTS} times")

    async def _read_answer(
        self, response: aiohttp.ClientResponse, max_bytes: int, dest: pathlib.Path | None
    ) -> bytes | pathlib.Path:
        try:
            refusal = download_answer_error(response.status, response.headers, max_bytes)
            if refusal is not None:
                raise refusal
            return await _read_body(_chunks(response), max_bytes, dest)
        except httpx.HTTPError as exc:
            raise transport_error(exc, secrets=self._secrets) from exc
        finally:
            # A body read to its end gives the connection back to the pool; one left unread closes it.
            if response.content.at_eof():
                response.release()
            else:
                response.close()


async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body's pieces; a failure while reading is raised as the httpx error it maps to (see `transport`)."""
    pieces = response.content.iter_chunked(_READ_CHUNK)
    while True:
        try:
            with mapped_errors():
                chunk = await pieces.__anext__()
        except StopAsyncIteration:
            return
        yield chunk


async def _read_body(chunks: AsyncIterator[bytes], max_bytes: int, dest: pathlib.Path | None) -> bytes | pathlib.Path:
    """The body, size-capped: in memory, or into `dest` through a `.part` file written off the event loop (a body
    under a megabyte in one hand-over to a thread, a larger one a megabyte at a time)."""
    partial = None if dest is None else dest.with_name(dest.name + ".part")
    handle: IO[bytes] | None = None
    data = bytearray()
    size = 0
    placed = False
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise DownloadTooLargeError(f"output is over the {max_bytes} byte limit", limit=max_bytes)
            data += chunk
            if partial is not None and len(data) >= _DOWNLOAD_WRITE_CHUNK:
                if handle is None:
                    handle = await asyncio.to_thread(partial.open, "wb")
                await asyncio.to_thread(handle.write, bytes(data))
                data.clear()
        if dest is None or partial is None:
            return bytes(data)
        await asyncio.to_thread(_finish_file, handle, partial, dest, bytes(data))
        placed = True
        return dest
    finally:
        if handle is not None and not placed:
            assert partial is not None
            await asyncio.to_thread(_discard_file, handle, partial)


def _finish_file(handle: IO[bytes] | None, partial: pathlib.Path, dest: pathlib.Path, rest: bytes) -> None:
    """Blocking: write the rest (a small body: all of it, opening the file here), close, and put it in place."""
    try:
        with handle if handle is not None else partial.open("wb") as file:
            file.write(rest)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _discard_file(handle: IO[bytes], partial: pathlib.Path) -> None:
    handle.close()
    partial.unlink(missing_ok=True)
