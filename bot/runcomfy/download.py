"""Downloads of RunComfy outputs: fenced, size-capped, deadline-bound, streamed to a file off the event loop.

An output URL comes from RunComfy's answer, so it is untrusted: it and every redirect hop go through the fence
(`download_fence`), at most 3 redirects are followed, and no API header (nor the token) is ever sent. Retries
follow the client's policy (429, 5xx, transport errors), all within one total deadline per image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import urllib.parse
from collections.abc import Iterable
from typing import Any

import httpx

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

log = logging.getLogger(__name__)

_DOWNLOAD_WRITE_CHUNK = 1024 * 1024


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
        self._timeout = timeout
        self._download_timeout = total_timeout
        self._secrets = tuple(secrets)
        self._fence = DownloadFence(base_url, **({"resolver": resolver} if resolver else {}))
        self._downloads = self._fence.client()

    async def aclose(self) -> None:
        await self._downloads.aclose()

    async def download(self, url: str, *, max_bytes: int, dest: pathlib.Path | None = None) -> bytes | pathlib.Path:
        """Fetch an output: bytes, or the file `dest` (written off the event loop, replaced only when complete).

        Raises `DownloadRefused` for a URL outside the fence, `TransportError` past the download deadline.
        """
        try:
            start = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise InvalidInputError("output URL is malformed") from exc
        if start.scheme.lower() not in ("http", "https"):
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

    async def _download_once(self, url: httpx.URL, max_bytes: int, dest: pathlib.Path | None) -> bytes | pathlib.Path:
        for _hop in range(MAX_REDIRECTS + 1):
            self._fence.check_url(url)
            request = self._downloads.build_request("GET", url, timeout=self._timeout)
            for name in ("Authorization", "Proxy-Authorization", "Cookie"):
                request.headers.pop(name, None)
            try:
                response = await self._downloads.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise transport_error(exc, secrets=self._secrets) from exc
            location = response.headers.get("location") if response.is_redirect else None
            if location is None:
                return await self._read_answer(response, max_bytes, dest)
            await response.aclose()
            try:
                url = response.url.join(location)
            except httpx.InvalidURL as exc:
                raise DownloadRefused("output redirect has a malformed location") from exc
        raise DownloadRefused(f"output URL redirects more than {MAX_REDIRECTS} times")

    async def _read_answer(
        self, response: httpx.Response, max_bytes: int, dest: pathlib.Path | None
    ) -> bytes | pathlib.Path:
        try:
            refusal = download_answer_error(response, max_bytes)
            if refusal is not None:
                raise refusal
            return await _read_body(response, max_bytes, dest)
        except httpx.HTTPError as exc:
            raise transport_error(exc, secrets=self._secrets) from exc
        finally:
            await response.aclose()


async def _read_body(response: httpx.Response, max_bytes: int, dest: pathlib.Path | None) -> bytes | pathlib.Path:
    """The body, size-capped: in memory, or into `dest` through a `.part` file written off the event loop."""
    partial = None if dest is None else dest.with_name(dest.name + ".part")
    handle = None if partial is None else await asyncio.to_thread(partial.open, "wb")
    data = bytearray()
    size = 0
    complete = False
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise DownloadTooLargeError(f"output is over the {max_bytes} byte limit", limit=max_bytes)
            data += chunk
            if handle is not None and len(data) >= _DOWNLOAD_WRITE_CHUNK:
                await asyncio.to_thread(handle.write, bytes(data))
                data.clear()
        if handle is None:
            return bytes(data)
        await asyncio.to_thread(handle.write, bytes(data))
        complete = True
        assert dest is not None
        return dest
    finally:
        if handle is not None:
            assert partial is not None and dest is not None
            await asyncio.to_thread(_finish_file, handle, partial, dest, complete)


def _finish_file(handle: Any, partial: pathlib.Path, dest: pathlib.Path, complete: bool) -> None:
    handle.close()
    if complete:
        os.replace(partial, dest)
    else:
        partial.unlink(missing_ok=True)
