"""Builders for Discord API objects, shaped like the real ones so discord.py parses them unmodified.

`FakeWorld` is the one guild the fake Discord knows: a text channel, roles (@everyone and an admin role) and
members (an admin, a normal member and another bot). Interaction payloads for slash commands and button clicks
are built against it.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024
FILESIZE_LIMIT_BY_TIER = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}

# Permission bits (https://discord.com/developers/docs/topics/permissions)
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
MEMBER_PERMISSIONS |= USE_APPLICATION_COMMANDS
ALL_PERMISSIONS = (1 << 51) - 1

# Interaction and option types
APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = range(1, 11)
BUTTON = 2
EPHEMERAL, LOADING = 1 << 6, 1 << 7


class Snowflakes:
    """Real-looking, strictly increasing snowflake ids (their timestamp part is now)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self) -> int:
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (millis << 22) | (next(self._counter) & 0x3FFFFF)


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": None if bot else name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def role(role_id: int, name: str, *, permissions: int, position: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def member(user_payload: dict[str, Any], role_ids: list[int]) -> dict[str, Any]:
    return {
        "user": user_payload,
        "nick": None,
        "avatar": None,
        "roles": [str(r) for r in role_ids],
        "joined_at": timestamp(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }


def text_channel(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "last_message_id": None, "recipients": [recipient], "flags": 0}


def message(
    message_id: int,
    channel_id: int,
    author: dict[str, Any],
    *,
    content: str = "",
    embeds: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    flags: int = 0,
    message_type: int = 0,
    guild_id: int | None = None,
    webhook_id: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "type": message_type,
        "content": content,
        "author": author,
        "embeds": embeds or [],
        "components": components or [],
        "attachments": attachments or [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": False,
        "timestamp": timestamp(),
        "edited_timestamp": None,
        "flags": flags,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    if webhook_id is not None:
        payload["webhook_id"] = str(webhook_id)
        payload["application_id"] = str(webhook_id)
    return payload


@dataclass
class FakeWorld:
    """The application, its bot user and the one guild the fake Discord serves."""

    premium_tier: int = 0
    guild_locale: str = "en-US"  # the server's language (Community servers choose it)
    ids: Snowflakes = field(default_factory=Snowflakes)

    def __post_init__(self) -> None:
        new = self.ids.next
        self.application_id = new()
        self.bot_user = user(self.application_id, "seedream-bot", bot=True)
        self.guild_id = new()
        self.channel = text_channel(new(), self.guild_id, "general")
        self.channel_id = int(self.channel["id"])
        self.everyone_role = role(self.guild_id, "@everyone", permissions=MEMBER_PERMISSIONS, position=0)
        self.admin_role = role(new(), "Admin", permissions=ADMINISTRATOR | MANAGE_GUILD, position=1)
        self.admin_role_id = int(self.admin_role["id"])
        self.admin = member(user(new(), "alice"), [self.admin_role_id])
        self.member = member(user(new(), "bob"), [])
        self.other_bot = member(user(new(), "otherbot", bot=True), [])
        self.owner_id = int(self.admin["user"]["id"])

    @property
    def filesize_limit(self) -> int:
        return FILESIZE_LIMIT_BY_TIER[self.premium_tier]

    @property
    def roles(self) -> list[dict[str, Any]]:
        return [self.everyone_role, self.admin_role]

    @property
    def members(self) -> list[dict[str, Any]]:
        return [self.admin, self.member, self.other_bot, member(self.bot_user, [])]

    def find_member(self, user_id: int) -> dict[str, Any] | None:
        return next((m for m in self.members if m["user"]["id"] == str(user_id)), None)

    def permissions_of(self, member_payload: dict[str, Any]) -> int:
        bits = int(self.everyone_role["permissions"])
        for r in self.roles:
            if r["id"] in member_payload["roles"]:
                bits |= int(r["permissions"])
        return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits

    def guild(self) -> dict[str, Any]:
        """The full guild object sent in GUILD_CREATE (and, without channels/members, by GET /guilds/{id})."""
        return {
            "id": str(self.guild_id),
            "name": "Seedream Test Server",
            "icon": None,
            "owner_id": str(self.owner_id),
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": self.guild_locale,
            "features": [],
            "roles": self.roles,
            "emojis": [],
            "stickers": [],
            "system_channel_flags": 0,
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "joined_at": timestamp(),
            "channels": [self.channel],
            "threads": [],
            "members": self.members,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def ready(
        self, session_id: str, resume_gateway_url: str, *, shard: list[int] | None = None, with_guild: bool = True
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": 10,
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if with_guild else [],
            "session_id": session_id,
            "resume_gateway_url": resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if shard is not None:
            payload["shard"] = list(shard)
        return payload

    def application(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "Seedream",
            "icon": None,
            "description": "Seedream 4.0 image sets",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot_user,
            "owner": self.admin["user"],
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "interactions_endpoint_url": None,
            "summary": "",
        }

    def interaction(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        by: dict[str, Any] | None = None,
        in_dm: bool = False,
        message_payload: dict[str, Any] | None = None,
        app_permissions: int | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload; `by` is a member payload (default: the normal member), `locale` the
        language of their Discord client."""
        by = by or self.member
        payload: dict[str, Any] = {
            "id": str(self.ids.next()),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "data": data,
            "token": "interaction." + secrets.token_urlsafe(24),
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": attachment_size_limit or self.filesize_limit,
            "app_permissions": str(MEMBER_PERMISSIONS if app_permissions is None else app_permissions),
        }
        if in_dm:
            channel = dm_channel(self.ids.next(), by["user"])
            payload.update(user=by["user"], channel=channel, channel_id=channel["id"], context=1)
            payload["authorizing_integration_owners"] = {"1": by["user"]["id"]}
        else:
            payload.update(
                guild_id=str(self.guild_id),
                guild={"id": str(self.guild_id), "locale": self.guild_locale, "features": []},
                guild_locale=self.guild_locale,
                channel=self.channel,
                channel_id=self.channel["id"],
                member={**by, "permissions": str(self.permissions_of(by))},
                context=0,
                authorizing_integration_owners={"0": str(self.guild_id)},
            )
        if message_payload is not None:
            payload["message"] = message_payload
        return payload


@dataclass(frozen=True)
class Unresolved:
    """A USER (or other snowflake) option whose id Discord sent without resolved data, e.g. a user who left."""

    id: int
    type: int = 6  # USER


def command_option(name: str, value: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One option and its `resolved` entries. Member, user and role payloads become USER / ROLE options."""
    if isinstance(value, Unresolved):
        return {"name": name, "type": value.type, "value": str(value.id)}, {}
    if isinstance(value, dict) and "roles" in value and "user" in value:  # a member
        user_id = value["user"]["id"]
        member_only = {k: v for k, v in value.items() if k != "user"}
        return {"name": name, "type": USER, "value": user_id}, {
            "users": {user_id: value["user"]},
            "members": {user_id: {**member_only, "permissions": "0"}},
        }
    if isinstance(value, dict) and "username" in value:  # a user outside the guild
        return {"name": name, "type": USER, "value": value["id"]}, {"users": {value["id"]: value}}
    if isinstance(value, dict) and "permissions" in value:  # a role
        return {"name": name, "type": ROLE, "value": value["id"]}, {"roles": {value["id"]: value}}
    if isinstance(value, dict) and "permission_overwrites" in value:  # a channel
        return {"name": name, "type": CHANNEL, "value": value["id"]}, {
            "channels": {value["id"]: {**value, "permissions": "0"}}
        }
    if isinstance(value, bool):
        return {"name": name, "type": BOOLEAN, "value": value}, {}
    if isinstance(value, int):
        return {"name": name, "type": INTEGER, "value": value}, {}
    if isinstance(value, float):
        return {"name": name, "type": NUMBER, "value": value}, {}
    return {"name": name, "type": STRING, "value": str(value)}, {}


def command_data(
    command_id: int,
    name: str,
    options: dict[str, Any] | None = None,
    *,
    subcommand: str | None = None,
    group: str | None = None,
    guild_id: int | None = None,
) -> dict[str, Any]:
    """`data` of a slash command interaction: `/name [group] [subcommand] options...`."""
    resolved: dict[str, dict[str, Any]] = {}
    leaf_options = []
    for option_name, value in (options or {}).items():
        option, option_resolved = command_option(option_name, value)
        leaf_options.append(option)
        for kind, entries in option_resolved.items():
            resolved.setdefault(kind, {}).update(entries)
    top_options = leaf_options
    if subcommand is not None:
        top_options = [{"name": subcommand, "type": SUB_COMMAND, "options": leaf_options}]
    if group is not None:
        if subcommand is None:
            raise ValueError("a subcommand group needs a subcommand")
        top_options = [{"name": group, "type": SUB_COMMAND_GROUP, "options": top_options}]
    data: dict[str, Any] = {"id": str(command_id), "name": name, "type": 1, "options": top_options}
    if resolved:
        data["resolved"] = resolved
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    return data


def button_data(custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "component_type": BUTTON}
