"""A fake Discord gateway (websocket): HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, dispatches.

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
            await session.send(DISPATCH, self.world.ready(session.session_id, self._url()), "READY")
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

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a dispatch event to every identified connection (waiting for one to exist)."""
        for session in await self.wait_for_identified():
            await session.send(DISPATCH, data, event)

    async def request_reconnect(self) -> None:
        """Ask the clients to reconnect (op 7): they will try to RESUME, which is refused."""
        for session in self.live_sessions:
            await session.send(RECONNECT)

    async def close(self) -> None:
        for session in self.sessions:
            if not session.ws.closed:
                await session.ws.close()
