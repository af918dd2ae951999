"""The REST routes of the fake Discord and the state they act on: channels, messages, interactions, commands.

Handlers take the path parameters, the JSON payload and the uploaded files, and return the JSON answer (None for
204) or raise `ApiError` with Discord's status, code and message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import discord_payloads as p
from tests.fakes.discord_history import NonceBook, history_page, nonce_problem

MAX_FILES, MAX_EMBEDS, MAX_CONTENT = 10, 10, 2000
TOKEN_LIFETIME_SECONDS = 15 * 60
CALLBACK_DEADLINE_SECONDS = 3.0
CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_WITH_SOURCE, UPDATE_MESSAGE = 4, 5, 7  # callback types
CHAT_INPUT_COMMAND_MESSAGE, REPLY_MESSAGE = 20, 19


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def form_error(field_name: str, message: str) -> ApiError:
    errors = {field_name: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": message}]}}
    return ApiError(400, 50035, "Invalid Form Body", errors)


@dataclass
class RecordedFile:
    field: str
    filename: str
    size: int
    content_type: str
    data: bytes = field(repr=False)


@dataclass
class InteractionState:
    """An interaction the fake dispatched: its callback and the messages answering it."""

    payload: dict[str, Any]
    created: float = field(default_factory=time.monotonic)
    callback_type: int | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return self.payload["token"]

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])


Handler = Callable[[dict[str, str], Any, list[RecordedFile]], Awaitable[Any]]


class DiscordRoutes:
    """State and REST handlers; `FakeDiscord` adds the server, recording, faults and conveniences."""

    base_url: str

    def __init__(self, world: p.FakeWorld) -> None:
        self.world = world
        self.messages: dict[int, list[dict[str, Any]]] = {}  # channel id -> live messages, oldest first
        self.deleted_messages: list[dict[str, Any]] = []
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> definitions
        self.interactions: dict[str, InteractionState] = {}  # by token
        self.channels: dict[int, dict[str, Any]] = {world.channel_id: world.channel}
        self.upload_limit = world.filesize_limit
        self.token_lifetime = TOKEN_LIFETIME_SECONDS
        self.callback_deadline = CALLBACK_DEADLINE_SECONDS
        self.denied_channels: set[int] = set()
        self.closed_dm_users: set[int] = set()
        # Some Discord versions (and emulations) refuse a followup once the deferred response was deleted.
        self.refuse_followups_after_deleted_deferral = False
        self.files: dict[int, bytes] = {}  # attachment id -> uploaded bytes
        self.nonces = NonceBook()

    def routes(self) -> list[tuple[str, str, Handler]]:
        webhook = "/webhooks/{application_id}/{token}"
        channel_message = "/channels/{channel_id}/messages/{message_id}"
        return [
            ("GET", "/users/@me", self.get_me),
            ("POST", "/users/@me/channels", self.create_dm),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/@me", self.get_application),
            ("GET", "/applications/{application_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/commands", self.put_commands),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            ("POST", webhook, self.create_followup),
            ("GET", webhook + "/messages/{message_id}", self.get_webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", self.edit_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", self.delete_webhook_message),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.get_channel_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_channel_message),
            ("GET", channel_message, self.get_channel_message),
            ("PATCH", channel_message, self.edit_channel_message),
            ("DELETE", channel_message, self.delete_channel_message),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self.get_guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_guild_member),
        ]

    # --- messages ---------------------------------------------------------------------------------------------
    def message(self, message_id: int) -> dict[str, Any] | None:
        for channel_messages in self.messages.values():
            for stored in channel_messages:
                if stored["id"] == str(message_id):
                    return stored
        return None

    def _check_message_payload(self, payload: dict[str, Any], files: list[RecordedFile]) -> None:
        if len(files) > MAX_FILES:
            raise form_error("files", f"Must be {MAX_FILES} or fewer in length.")
        if len(payload.get("embeds") or []) > MAX_EMBEDS:
            raise form_error("embeds", f"Must be {MAX_EMBEDS} or fewer in length.")
        if len(payload.get("content") or "") > MAX_CONTENT:
            raise form_error("content", f"Must be {MAX_CONTENT} or fewer in length.")
        if sum(f.size for f in files) > self.upload_limit:
            raise ApiError(413, 40005, "Request entity too large")

    def _create_message(
        self, channel_id: int, payload: dict[str, Any], files: list[RecordedFile], **options: Any
    ) -> dict[str, Any]:
        guild_id = self.world.guild_id if channel_id == self.world.channel_id else None
        options.setdefault("flags", payload.get("flags", 0))
        created = p.message(self.world.ids.next(), channel_id, self.world.bot_user, guild_id=guild_id, **options)
        if payload.get("message_reference"):
            created["message_reference"] = payload["message_reference"]
            created["type"] = REPLY_MESSAGE
        self._apply(created, payload, files, edit=False)
        self.messages.setdefault(channel_id, []).append(created)
        return created

    def _apply(
        self, message: dict[str, Any], payload: dict[str, Any], files: list[RecordedFile], *, edit: bool
    ) -> None:
        for key in ("content", "embeds", "components"):
            if key in payload and payload[key] is not None:
                message[key] = payload[key]
        described = {str(a.get("id")): a for a in payload.get("attachments") or []}
        existing = message["attachments"]
        if "attachments" in payload:  # an explicit list: existing attachments not named in it are removed
            existing = [a for a in existing if a["id"] in described]
        new = [self._attachment(message, f, described.get(f.field[6:-1], {})) for f in files]  # "files[n]"
        message["attachments"] = existing + new
        if edit:
            message["edited_timestamp"] = p.timestamp()
            message["flags"] &= ~p.LOADING

    def _attachment(self, message: dict[str, Any], upload: RecordedFile, described: dict[str, Any]) -> dict[str, Any]:
        attachment_id = self.world.ids.next()
        self.files[attachment_id] = upload.data
        filename = described.get("filename") or upload.filename
        url = f"{self.base_url}/attachments/{message['channel_id']}/{attachment_id}/{filename}"
        attachment = {
            "id": str(attachment_id),
            "filename": filename,
            "size": upload.size,
            "url": url,
            "proxy_url": url,
            "content_type": upload.content_type,
        }
        if described.get("description"):
            attachment["description"] = described["description"]
        return attachment

    def _delete(self, message: dict[str, Any]) -> None:
        self.messages[int(message["channel_id"])].remove(message)
        self.deleted_messages.append(message)

    # --- interactions -----------------------------------------------------------------------------------------
    def _interaction(self, token: str) -> InteractionState:
        """The interaction behind a webhook token; 401 once the token expired (or if it never existed)."""
        state = self.interactions.get(token)
        if state is None or time.monotonic() - state.created > self.token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return state

    def _webhook_message(self, params: dict[str, str]) -> tuple[InteractionState, dict[str, Any]]:
        state = self._interaction(params["token"])
        wanted = params["message_id"]
        message_id = state.original_id if wanted == "@original" else int(wanted)
        known = message_id is not None and (message_id == state.original_id or message_id in state.followup_ids)
        found = self.message(message_id) if known and message_id is not None else None
        if found is None:
            raise ApiError(404, 10008, "Unknown Message")
        return state, found

    async def interaction_callback(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        state = self.interactions.get(params["token"])
        too_late = state is not None and time.monotonic() - state.created > self.callback_deadline
        if state is None or str(state.id) != params["interaction_id"] or too_late:
            raise ApiError(404, 10062, "Unknown interaction")
        if state.callback_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind, data = payload["type"], payload.get("data") or {}
        self._check_message_payload(data, files)
        message = None
        if kind in (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_WITH_SOURCE):
            flags = (data.get("flags") or 0) & p.EPHEMERAL
            if kind == DEFERRED_WITH_SOURCE:
                flags, data = flags | p.LOADING, {}
            options = {"flags": flags, "webhook_id": self.world.application_id}
            message = self._create_message(
                state.channel_id, data, files, message_type=CHAT_INPUT_COMMAND_MESSAGE, **options
            )
            state.original_id = int(message["id"])
        elif kind == UPDATE_MESSAGE and state.original_id is not None:
            message = self.message(state.original_id)
            if message is not None:
                self._apply(message, data, files, edit=True)
        state.callback_type = kind
        interaction = {"id": str(state.id), "type": state.payload["type"]}
        if message is not None:
            interaction["response_message_id"] = message["id"]
            interaction["response_message_loading"] = bool(message["flags"] & p.LOADING)
            interaction["response_message_ephemeral"] = bool(message["flags"] & p.EPHEMERAL)
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            resource["message"] = message
        return {"interaction": interaction, "resource": resource}

    async def create_followup(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        state = self._interaction(params["token"])
        payload = payload or {}
        self._check_message_payload(payload, files)
        original = self.message(state.original_id) if state.original_id is not None else None
        deleted = state.original_id is not None and original is None
        if deleted and state.callback_type == DEFERRED_WITH_SOURCE and self.refuse_followups_after_deleted_deferral:
            raise ApiError(404, 10008, "Unknown Message")
        if original is not None and original["flags"] & p.LOADING:
            # The first followup after a deferred response replaces the "thinking" message.
            self._apply(original, payload, files, edit=True)
            return original
        flags = (payload.get("flags") or 0) & p.EPHEMERAL
        followup = self._create_message(
            state.channel_id, payload, files, flags=flags, webhook_id=self.world.application_id
        )
        state.followup_ids.append(int(followup["id"]))
        return followup

    async def get_webhook_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self._webhook_message(params)[1]

    async def edit_webhook_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        _state, message = self._webhook_message(params)
        self._check_message_payload(payload or {}, files)
        self._apply(message, payload or {}, files, edit=True)
        return message

    async def delete_webhook_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self._delete(self._webhook_message(params)[1])
        return None

    # --- channels ---------------------------------------------------------------------------------------------
    def _channel(self, channel_id: str) -> dict[str, Any]:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if int(channel_id) in self.denied_channels:
            raise ApiError(403, 50013, "Missing Permissions")
        return channel

    def _channel_message(self, params: dict[str, str]) -> dict[str, Any]:
        self._channel(params["channel_id"])
        found = self.message(int(params["message_id"]))
        if found is None or found["channel_id"] != params["channel_id"]:
            raise ApiError(404, 10008, "Unknown Message")
        return found

    async def get_channel(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self._channel(params["channel_id"])

    async def get_channel_messages(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self._channel(params["channel_id"])
        query = {key[1:]: value for key, value in params.items() if key.startswith("?")}
        return history_page(self.messages.get(int(params["channel_id"]), []), query)

    async def create_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        channel = self._channel(params["channel_id"])
        recipients = channel.get("recipients") or []
        if any(int(r["id"]) in self.closed_dm_users for r in recipients):
            raise ApiError(403, 50007, "Cannot send messages to this user")
        payload = payload or {}
        problem = nonce_problem(payload)
        if problem:
            raise form_error("nonce", problem)
        existing = self.nonces.existing(self.world.bot_user["id"], payload)
        if existing is not None:
            return existing
        self._check_message_payload(payload, files)
        created = self._create_message(int(channel["id"]), payload, files)
        return self.nonces.remember(self.world.bot_user["id"], payload, created)

    async def get_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self._channel_message(params)

    async def edit_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        message = self._channel_message(params)
        # As on Discord: a bot edits its own messages, its public command replies included, but not ephemeral ones.
        if message.get("flags", 0) & p.EPHEMERAL:
            raise ApiError(404, 10008, "Unknown Message")
        if str(message["author"]["id"]) != str(self.world.bot_user["id"]):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._check_message_payload(payload or {}, files)
        self._apply(message, payload or {}, files, edit=True)
        return message

    async def delete_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self._delete(self._channel_message(params))
        return None

    async def create_dm(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        recipient = self.world.find_member(int(payload["recipient_id"]))
        if recipient is None:
            raise ApiError(404, 10013, "Unknown User")
        for channel in self.channels.values():
            if channel.get("recipients") == [recipient["user"]]:
                return channel
        channel = p.dm_channel(self.world.ids.next(), recipient["user"])
        self.channels[int(channel["id"])] = channel
        return channel

    # --- users, application, gateway, commands, guild ---------------------------------------------------------
    async def get_me(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return {**self.world.bot_user, "verified": True, "mfa_enabled": False, "flags": 0}

    async def get_user(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        found = self.world.find_member(int(params["user_id"]))
        if found is None:
            raise ApiError(404, 10013, "Unknown User")
        return found["user"]

    async def get_application(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self.world.application()

    async def get_gateway(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return {
            "url": self.base_url.replace("http://", "ws://") + "/gateway",
            "shards": 1,
            "session_start_limit": limit,
        }

    def _command_scope(self, params: dict[str, str]) -> int | None:
        if params["application_id"] != str(self.world.application_id):
            raise ApiError(403, 50001, "Missing Access")
        guild_id = params.get("guild_id")
        if guild_id is not None and guild_id != str(self.world.guild_id):
            raise ApiError(403, 50001, "Missing Access")
        return None if guild_id is None else int(guild_id)

    async def get_commands(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self.commands.get(self._command_scope(params), [])

    async def put_commands(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        guild_id = self._command_scope(params)
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in self.commands.get(guild_id, [])}
        stored = []
        for definition in payload:
            key = (definition["name"], definition.get("type", 1))
            command = {
                "default_member_permissions": None,
                **definition,
                "id": previous.get(key) or str(self.world.ids.next()),
                "application_id": str(self.world.application_id),
                "type": key[1],
                "version": str(self.world.ids.next()),
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored.append(command)
        self.commands[guild_id] = stored
        return stored

    def _guild(self, guild_id: str) -> dict[str, Any]:
        if guild_id != str(self.world.guild_id):
            raise ApiError(404, 10004, "Unknown Guild")
        return self.world.guild()

    async def get_guild(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        guild = self._guild(params["guild_id"])
        for key in ("channels", "members", "threads", "voice_states", "presences", "joined_at", "member_count"):
            guild.pop(key, None)
        return {**guild, "approximate_member_count": len(self.world.members)}

    async def get_guild_channels(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self._guild(params["guild_id"])["channels"]

    async def get_guild_roles(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        return self._guild(params["guild_id"])["roles"]

    async def get_guild_member(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self._guild(params["guild_id"])
        found = self.world.find_member(int(params["user_id"]))
        if found is None:
            raise ApiError(404, 10007, "Unknown Member")
        return found
