"""Where output downloads may go: an output URL is untrusted, and must not reach the bot's own network.

Rules, for the image URL and every redirect hop:
- `https`, to a host whose every address is public (not loopback, private, link-local, unique-local, unspecified,
  multicast or reserved, also when written as an IPv4-mapped or NAT64 IPv6 address);
- the single exception is the exact scheme, host and port of RUNCOMFY_BASE_URL (a local fake or proxy);
- at most `MAX_REDIRECTS` redirects.

The addresses are checked where the connection is made: `FencedBackend` resolves the host itself (with the event
loop's getaddrinfo), refuses it unless every address is public, and connects to one of the addresses it checked.
So a name that resolves differently a moment later (DNS rebinding) cannot slip past. Downloads use their own
connection pool, ignoring proxy variables: a proxy would connect on the bot's behalf, unchecked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from bot.runcomfy.errors import DownloadRefused

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], Awaitable[list[str]]]


def is_public_address(address: str) -> bool:
    """Whether an IP address (text) is one the bot may download from."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) says nothing more
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    bad = ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved
    if isinstance(ip, ipaddress.IPv6Address):
        bad = bad or ip.is_site_local
    return ip.is_global and not bad


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, url.raw_host.decode("ascii").lower(), url.port or DEFAULT_PORTS.get(scheme, 0)


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address of `host`, from the event loop's resolver (never blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class FencedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked public addresses, or to the trusted (RunComfy base URL) host and port as asked."""

    def __init__(
        self,
        trusted: tuple[str, int] | None,
        *,
        resolver: Resolver = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._trusted = trusted
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        options: dict[str, Any] = {"timeout": timeout, "local_address": local_address, "socket_options": socket_options}
        if self._trusted is not None and (host.lower(), port) == self._trusted:
            return await self._inner.connect_tcp(host, port, **options)
        try:
            addresses = [str(ipaddress.ip_address(host))]  # a literal address needs no resolving
        except ValueError:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self._resolve(host, port)
            except (OSError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses or not all(is_public_address(address) for address in addresses):
            raise DownloadRefused(f"output host {host} does not resolve only to public addresses")
        failure: Exception | None = None
        for address in addresses:  # pinned: the connection goes to an address checked just now
            try:
                return await self._inner.connect_tcp(address, port, **options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:  # noqa: ASYNC109
        raise DownloadRefused("output downloads never use a local socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class DownloadFence:
    """The URL rules, and an HTTP client whose connections obey the address rules."""

    def __init__(self, base_url: str, *, resolver: Resolver = resolve_host) -> None:
        self.trusted_origin = origin_of(httpx.URL(base_url))
        _scheme, host, port = self.trusted_origin
        self.backend = FencedBackend((host, port), resolver=resolver)

    def check_url(self, url: httpx.URL) -> None:
        """Raise `DownloadRefused` unless `url` is https, or has exactly the trusted origin."""
        origin = origin_of(url)
        if origin == self.trusted_origin:
            return
        if origin[0] != "https":
            raise DownloadRefused(f"output URL scheme {origin[0] or 'none'!r} is not https")
        if origin[1:] == self.trusted_origin[1:]:
            raise DownloadRefused("output URL has RunComfy's host and port but another scheme")

    def client(self) -> httpx.AsyncClient:
        """A client that never follows redirects itself and connects only through the fenced backend."""
        transport = httpx.AsyncHTTPTransport(trust_env=False)
        # httpx has no parameter for the network backend: its pool is replaced by one using the fenced backend.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=self.backend,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
        )
        return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
