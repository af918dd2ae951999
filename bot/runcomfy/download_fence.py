"""Where output downloads may go: an output URL is untrusted, and must not reach the bot's own network.

Rules, for the image URL and every redirect hop:
- `https`, to a host whose every address is public (not loopback, private, link-local, unique-local, unspecified,
  multicast or reserved, also when written as an IPv4-mapped or NAT64 IPv6 address);
- the single exception is the exact scheme, host and port of RUNCOMFY_BASE_URL (a local fake or proxy);
- at most `MAX_REDIRECTS` redirects.

A host written as an address is checked with the URL. A name is checked where the connection is made: the
downloads' connector asks `FencedResolver`, which resolves the name itself (with the event loop's getaddrinfo),
refuses it unless every address is public, and hands the connector exactly those addresses, which it connects to
without resolving anything again. So a name that resolves differently a moment later (DNS rebinding) cannot slip
past. Downloads use their own connection pool, ignoring proxy variables: a proxy would connect on the bot's
behalf, unchecked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

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


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def origin_of(url: yarl.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, (url.raw_host or "").lower(), url.explicit_port or DEFAULT_PORTS.get(scheme, 0)


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address of `host`, from the event loop's resolver (never blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class FencedResolver(AbstractResolver):
    """Resolves for the downloads' connector: only names whose every address is public, or the trusted
    (RunComfy base URL) host and port as it resolves. The connector connects to the addresses given here."""

    def __init__(
        self, trusted: tuple[str, int] | None, *, resolver: Resolver = resolve_host, timeout: float | None = None
    ) -> None:
        self._trusted = trusted
        self._resolve = resolver
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        trusted = self._trusted is not None and (host.lower(), port) == self._trusted
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await (resolve_host if trusted else self._resolve)(host, port)
        except TimeoutError:
            raise OSError(f"cannot resolve {host}: timed out") from None
        if not trusted and (not addresses or not all(is_public_address(address) for address in addresses)):
            raise DownloadRefused(f"output host {host} does not resolve only to public addresses")
        if not addresses:
            raise OSError(f"cannot resolve {host}")
        return [
            ResolveResult(
                hostname=host,  # what TLS checks the certificate against
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class DownloadFence:
    """The URL rules, and an HTTP session whose connections obey the address rules."""

    def __init__(
        self, base_url: str, *, resolver: Resolver = resolve_host, resolve_timeout: float | None = None
    ) -> None:
        self.trusted_origin = origin_of(yarl.URL(base_url))
        _scheme, host, port = self.trusted_origin
        self.resolver = FencedResolver((host, port), resolver=resolver, timeout=resolve_timeout)

    def check_url(self, url: yarl.URL) -> None:
        """Raise `DownloadRefused` unless `url` is https to a name or a public address, or has exactly the trusted
        origin."""
        origin = origin_of(url)
        if origin == self.trusted_origin:
            return
        if origin[0] != "https":
            raise DownloadRefused(f"output URL scheme {origin[0] or 'none'!r} is not https")
        if origin[1:] == self.trusted_origin[1:]:
            raise DownloadRefused("output URL has RunComfy's host and port but another scheme")
        if _is_address(origin[1]) and not is_public_address(origin[1]):
            raise DownloadRefused(f"output host {origin[1]} is not a public address")

    def session(self) -> aiohttp.ClientSession:
        """A session (make it inside the running loop) connecting only through the fenced resolver, without cookies
        or proxies; it never follows redirects when asked with `allow_redirects=False`, as downloads are."""
        connector = aiohttp.TCPConnector(
            limit=100,
            keepalive_timeout=5.0,
            resolver=self.resolver,
            ssl=httpx.create_ssl_context(trust_env=False),
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
