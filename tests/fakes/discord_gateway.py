"""A fake Discord gateway (websocket): HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, dispatches.

Sharding is Discord's: an IDENTIFY may carry `shard: [id, count]`; the guild is created, and its events dispatched,
only on the shard `(guild_id >> 22) % count`. A shard outside 0..count-1 is closed with 4010 (Invalid shard).

Frames are plain-text JSON: discord.py asks for zlib/zstd compression in the query string but accepts text frames.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_payloads import FakeWorld

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11
AUTHENTICATION_FAILED = 4004
INVALID_SHARD = 4010


def shard_holds_guild(shard: list[int] | None, guild_id: int) -> bool:
    """Discord's rule: guild events go to shard `(guild_id >> 22) % shard_count` (all of them without sharding)."""
    return shard is None or (guild_id >> 22) % shard[1] == shard[0]


@dataclass
class GatewaySession:
    """One websocket connection; `identify` is set once it identified successfully."""

    path: str
    query: dict[str, str]
    ws: web.WebSocketResponse
    identify: dict[str, Any] | None = None
    session_id: str = field(default_factory=lambda: secrets.token_hex(16))
    sequence: int = 0
    heartbeats: int = 0

    def holds_guild(self, guild_id: int) -> bool:
        return self.identify is not None and shard_holds_guild(self.identify.get("shard"), guild_id)

    async def send(self, op: int, data: Any = None, event: str | None = None) -> None:
        frame: dict[str, Any] = {"op": op, "d": data, "s": None, "t": event}
        if op == DISPATCH:
            self.sequence += 1
            frame["s"] = self.sequence
        await self.ws.send_str(json.dumps(frame))


class FakeGateway:
    def __init__(self, world: FakeWorld, token: Callable[[], str], url: Callable[[], str]) -> None:
        self.world = world
        self._token = token
        self._url = url
        self.heartbeat_interval_ms = 41_250
        self.sessions: list[GatewaySession] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self._identified = asyncio.Condition()

    @property
    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if s.identify is not None and not s.ws.closed]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = GatewaySession(path=request.path, query=dict(request.query), ws=ws)
        self.sessions.append(session)
        await session.send(HELLO, {"heartbeat_interval": self.heartbeat_interval_ms})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            await self._on_frame(session, payload["op"], payload.get("d"))
        return ws

    async def _on_frame(self, session: GatewaySession, op: int, data: Any) -> None:
        if op == HEARTBEAT:
            session.heartbeats += 1
            await session.send(HEARTBEAT_ACK)
        elif op == IDENTIFY:
            self.identifies.append(data)
            if data.get("token") != self._token():
                await session.ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
                return
            shard = data.get("shard")
            if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
                await session.ws.close(code=INVALID_SHARD, message=b"Invalid shard.")
                return
            holds_guild = shard_holds_guild(shard, self.world.guild_id)
            ready = self.world.ready(session.session_id, self._url(), shard=shard, with_guild=holds_guild)
            await session.send(DISPATCH, ready, "READY")
            if holds_guild:
                await session.send(DISPATCH, self.world.guild(), "GUILD_CREATE")
            async with self._identified:
                session.identify = data
                self._identified.notify_all()
        elif op == RESUME:
            # Sessions are never resumable here: the client must identify again.
            self.resumes.append(data)
            await session.send(INVALID_SESSION, False)

    async def wait_for_identified(self, count: int = 1, timeout: float = 5.0) -> list[GatewaySession]:  # noqa: ASYNC109
        """Wait until `count` connections identified in all and one is live; return the live ones."""

        def reached() -> bool:
            identified = sum(1 for s in self.sessions if s.identify is not None)
            return identified >= count and bool(self.live_sessions)

        async with self._identified:
            await asyncio.wait_for(self._identified.wait_for(reached), timeout)
        return self.live_sessions

    @property
    def identified_shards(self) -> list[list[int]]:
        """The `shard` of every IDENTIFY so far, in order (unsharded ones left out)."""
        return [list(i["shard"]) for i in self.identifies if i.get("shard") is not None]

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch event to the identified connections whose shard holds the guild (waiting for one)."""
        guild_id = int(data.get("guild_id") or self.world.guild_id)
        async with self._identified:
            await asyncio.wait_for(
                self._identified.wait_for(lambda: any(s.holds_guild(guild_id) for s in self.live_sessions)), 5.0
            )
        for session in self.live_sessions:
            if session.holds_guild(guild_id):
                await session.send(DISPATCH, data, event)

    async def request_reconnect(self) -> None:
        """Ask the clients to reconnect (op 7): they will try to RESUME, which is refused."""
        for session in self.live_sessions:
            await session.send(RECONNECT)

    async def close(self) -> None:
        for session in self.sessions:
            if not session.ws.closed:
                await session.ws.close()
