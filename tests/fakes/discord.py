"""A fake Discord REST API (aiohttp.web on 127.0.0.1) with its gateway, for running the real bot end to end.

Every request is recorded (`requests`); unknown routes answer 404 and are listed in `unknown_routes`. Messages,
interaction responses and command definitions are stored so tests can assert on them. Faults (rate limits,
expired interaction tokens, upload limits, server errors, missing permissions) are switched on per test.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_gateway import FakeGateway
from tests.fakes.discord_routes import ApiError, DiscordRoutes, Handler, InteractionState, RecordedFile

API_PREFIX = "/api/v10"
MESSAGE_EDIT_PATHS = r"^/channels/\d+/messages/\d+$|^/webhooks/\d+/[^/]+/messages/"


@dataclass
class RecordedRequest:
    index: int
    method: str
    path: str  # below /api/v10, without the query
    query: dict[str, str]
    json: Any  # the JSON body, or `payload_json` of a multipart body
    files: list[RecordedFile]
    route: str | None  # e.g. "POST /channels/{channel_id}/messages"; None for unknown routes
    status: int
    response: Any


@dataclass
class FaultRule:
    method: str | None
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int | None  # None: forever
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        active = self.times is None or self.hits < self.times
        return active and (self.method in (None, method)) and self.path.search(path) is not None


class FakeDiscord(DiscordRoutes):
    def __init__(self, *, token: str = "fake-bot-token", premium_tier: int = 0) -> None:
        super().__init__(p.FakeWorld(premium_tier=premium_tier))
        self.token = token
        self.gateway = FakeGateway(self.world, token=lambda: self.token, url=lambda: self.gateway_url)
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[str] = []
        self.faults: list[FaultRule] = []
        self.stalls: list[FaultRule] = []
        self._stalls_released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._request_added: asyncio.Condition | None = None
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        for method, template, handler in self.routes():
            pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")
            self._routes.append((method, pattern, f"{method} {template}", handler))

    # --- server -----------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    async def start(self) -> None:
        self._request_added = asyncio.Condition()
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/{name}", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle_api)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stall_after_accepting(self, method: str | None, path: str, *, times: int | None = 1) -> FaultRule:
        """Requests matching `method` and the `path` regex are carried out, but answered only when the fake closes:
        what a client sees when it dies, or its connection breaks, while Discord accepts its message."""
        rule = FaultRule(method, re.compile(path), 0, None, {}, times)
        self.stalls.append(rule)
        return rule

    async def close(self) -> None:
        self._stalls_released.set()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_api(self, request: web.Request) -> web.Response:
        path = request.path[len(API_PREFIX) :]
        payload, files = await _read_body(request)
        route, status, answer, headers = None, 200, None, {}
        try:
            handler, params, route = self._find_route(request.method, path)
            params.update({"?" + key: value for key, value in request.query.items()})  # "?limit", "?after"...
            fault = next((f for f in self.faults if f.matches(request.method, path)), None)
            if fault is not None:
                fault.hits += 1
                status, answer, headers = fault.status, fault.body, fault.headers
            else:
                if not path.startswith(("/webhooks/", "/interactions/")):
                    self._check_authorization(request)
                answer = await handler(params, payload, files)
                status = 204 if answer is None else 200
        except ApiError as exc:
            status, answer = exc.status, exc.body
        await self._record(request, path, payload, files, route, status, answer)
        stall = next((s for s in self.stalls if s.matches(request.method, path)), None)
        if stall is not None and status < 300:
            stall.hits += 1
            await self._stalls_released.wait()  # accepted, but the answer never comes (until the fake closes)
        if answer is None:
            return web.Response(status=status, headers=headers)
        body = json.dumps(answer).encode()
        # Exactly "application/json": discord.py treats anything else (even with a charset) as text.
        return web.Response(status=status, body=body, headers={**headers, "Content-Type": "application/json"})

    def _find_route(self, method: str, path: str) -> tuple[Handler, dict[str, str], str]:
        for route_method, pattern, name, handler in self._routes:
            found = pattern.match(path)
            if found and route_method == method:
                return handler, found.groupdict(), name
        self.unknown_routes.append(f"{method} {path}")
        raise ApiError(404, 0, "404: Not Found")

    def _check_authorization(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    async def _record(
        self, request: web.Request, path: str, payload: Any, files: list[RecordedFile], *rest: Any
    ) -> None:
        assert self._request_added is not None
        route, status, answer = rest
        recorded = RecordedRequest(
            len(self.requests), request.method, path, dict(request.query), payload, files, route, status, answer
        )
        async with self._request_added:
            self.requests.append(recorded)
            self._request_added.notify_all()

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        data = self.files.get(int(request.match_info["attachment_id"]))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    # --- faults -----------------------------------------------------------------------------------------------
    def rate_limit(
        self,
        method: str | None,
        path: str,
        *,
        retry_after: float = 0.05,
        times: int | None = 1,
        is_global: bool = False,
    ) -> FaultRule:
        """Answer 429 (with Discord's headers and body) to requests matching `method` and the `path` regex."""
        reset = time.time() + retry_after
        headers = {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{reset:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fake-" + re.sub(r"\W", "", path)[:16],
            "X-RateLimit-Scope": "global" if is_global else "user",
            "Retry-After": str(math.ceil(retry_after)),
            "Via": "1.1 google",  # discord.py only retries 429s that came through Discord's proxy
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        return self._add_fault(method, path, 429, body, headers, times)

    def fail(
        self, method: str | None, path: str, *, status: int = 500, times: int | None = 1, code: int = 0
    ) -> FaultRule:
        """Answer `status` to requests matching `method` and the `path` regex."""
        body = {"message": f"{status}: Fake failure", "code": code}
        return self._add_fault(method, path, status, body, {}, times)

    def fail_message_edits(self, *, status: int = 500, times: int | None = 1) -> FaultRule:
        """Server errors on message edits (channel messages and interaction responses alike)."""
        return self.fail("PATCH", MESSAGE_EDIT_PATHS, status=status, times=times)

    def _add_fault(self, method: str | None, path: str, status: int, body: Any, headers: Any, times: Any) -> FaultRule:
        rule = FaultRule(method, re.compile(path), status, body, headers, times)
        self.faults.append(rule)
        return rule

    def expire_tokens_after(self, seconds: float) -> None:
        """Interaction tokens (existing and future) stop working `seconds` after their interaction was created."""
        self.token_lifetime = seconds

    def set_premium_tier(self, tier: int) -> None:
        """Boost the guild (before the bot connects): its upload limit follows the tier, 10/10/50/100 MiB."""
        self.world.premium_tier = tier
        self.upload_limit = self.world.filesize_limit

    def deny_channel(self, channel_id: int) -> None:
        """The bot lacks permissions in this channel: its channel routes answer 403 (code 50013)."""
        self.denied_channels.add(channel_id)

    def close_dms(self, user_id: int) -> None:
        """This user does not accept direct messages (403, code 50007)."""
        self.closed_dm_users.add(user_id)

    # --- waiting and lookups ----------------------------------------------------------------------------------
    def mark(self) -> int:
        """A position in `requests`: pass it as `after=` to only see later requests."""
        return len(self.requests)

    def find_requests(
        self, method: str | None = None, path: str | None = None, *, after: int = 0
    ) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests[after:]
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    async def wait_for_request(
        self,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        after: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 (a deadline for the wait, not for the work)
    ) -> RecordedRequest:
        """The first request (recorded at or after `after`) matching all the filters; waits for it if needed."""
        assert self._request_added is not None

        def first() -> RecordedRequest | None:
            matches = (r for r in self.find_requests(method, path, after=after) if predicate is None or predicate(r))
            return next(matches, None)

        async with self._request_added:
            try:
                await asyncio.wait_for(self._request_added.wait_for(lambda: first() is not None), timeout)
            except TimeoutError:
                seen = "\n".join(f"  {r.method} {r.path} -> {r.status}" for r in self.requests[after:])
                raise AssertionError(f"no request matching {method} {path} within {timeout}s; seen:\n{seen}") from None
        found = first()
        assert found is not None
        return found

    async def wait_for_callback(self, interaction: InteractionState, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109
        path = rf"^/interactions/{interaction.id}/[^/]+/callback$"
        return await self.wait_for_request(method="POST", path=path, timeout=timeout)

    def original_for(self, interaction: InteractionState | str) -> dict[str, Any] | None:
        state = self.interactions[interaction if isinstance(interaction, str) else interaction.token]
        return None if state.original_id is None else self.message(state.original_id)

    def followups_for(self, interaction: InteractionState | str) -> list[dict[str, Any]]:
        state = self.interactions[interaction if isinstance(interaction, str) else interaction.token]
        found = (self.message(i) for i in state.followup_ids)
        return [m for m in found if m is not None]

    def registered_command(self, name: str) -> tuple[dict[str, Any], int | None]:
        """The synced definition of `/name` and its guild (None if global); development-guild commands win."""
        for guild_id in sorted(self.commands, key=lambda g: g is None):
            for definition in self.commands[guild_id]:
                if definition["name"] == name and definition.get("type", 1) == 1:
                    return definition, guild_id
        raise AssertionError(f"/{name} is not registered (synced commands: {self.commands})")

    # --- driving the bot --------------------------------------------------------------------------------------
    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway dispatch event to the connected bot(s)."""
        if event == "INTERACTION_CREATE":
            self.register_interaction(data)
        await self.gateway.dispatch(event, data)

    def register_interaction(self, payload: dict[str, Any]) -> InteractionState:
        """Make the fake know an interaction (its token and message) without dispatching it; `dispatch` calls it."""
        state = self.interactions.get(payload["token"])
        if state is None:
            state = self.interactions[payload["token"]] = InteractionState(payload)
        if "message" in payload:  # a component: its message is the interaction's original response
            state.original_id = int(payload["message"]["id"])
            if self.message(state.original_id) is None:
                self.messages.setdefault(int(payload["message"]["channel_id"]), []).append(payload["message"])
        return state

    async def run_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        by: dict[str, Any] | None = None,
        **interaction_options: Any,
    ) -> InteractionState:
        """Invoke a synced slash command as `by` (a member payload, default the normal member)."""
        definition, guild_id = self.registered_command(name)
        data = p.command_data(int(definition["id"]), name, options, subcommand=subcommand, group=group)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        interaction_options.setdefault("attachment_size_limit", self.upload_limit)
        payload = self.world.interaction(p.APPLICATION_COMMAND, data, by=by, **interaction_options)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def click_button(
        self, custom_id: str, message: dict[str, Any], *, by: dict[str, Any] | None = None, **interaction_options: Any
    ) -> InteractionState:
        """Click the button `custom_id` on `message` (a stored message object) as `by`."""
        interaction_options.setdefault("attachment_size_limit", self.upload_limit)
        payload = self.world.interaction(
            p.MESSAGE_COMPONENT, p.button_data(custom_id), by=by, message_payload=message, **interaction_options
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]


async def _read_body(request: web.Request) -> tuple[Any, list[RecordedFile]]:
    """The JSON payload (plain, or `payload_json` of a multipart body) and the uploaded files."""
    if not request.can_read_body:
        return None, []
    if request.content_type.startswith("multipart/"):
        payload, files = None, []
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                payload = json.loads(data)
            else:
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files.append(RecordedFile(part.name or "", part.filename or "", len(data), content_type, bytes(data)))
        return payload, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), []
