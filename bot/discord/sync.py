"""Slash command sync that only talks to Discord when the command definitions changed.

Syncing is rate limited by Discord, so the bot keeps a hash of what it last synced (and where) and skips the
sync when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

import discord
from discord import app_commands

log = logging.getLogger(__name__)

COMMANDS_HASH_KEY = "commands_hash"


class MetaStore(Protocol):
    """Where small bits of bot state live (the SQLite storage implements it)."""

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...


class InMemoryMetaStore:
    """A `MetaStore` that forgets everything when the process ends."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    async def get_meta(self, key: str) -> str | None:
        return self._values.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._values[key] = value


async def command_definitions(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    """The global command definitions exactly as they would be sent to Discord (with their translations), in a
    stable order."""
    translator = tree.translator
    if translator is None:
        definitions = [command.to_dict(tree) for command in tree.get_commands()]
    else:
        definitions = [await command.get_translated_payload(tree, translator) for command in tree.get_commands()]
    return sorted(definitions, key=lambda d: (d.get("type", 1), d["name"]))


async def commands_hash(tree: app_commands.CommandTree[Any], *, dev_guild_id: int | None) -> str:
    """A hash of the definitions, the application and the sync target: any change (also of a translation) means a
    new sync."""
    document = {
        "application_id": tree.client.application_id,
        "target": dev_guild_id,
        "commands": await command_definitions(tree),
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


async def sync_commands(tree: app_commands.CommandTree[Any], store: MetaStore, *, dev_guild_id: int | None) -> bool:
    """Sync the commands if they changed since the last sync; return whether a sync happened.

    With `dev_guild_id`, the global commands are copied to that server and synced there (instant updates while
    developing); otherwise they are synced globally. Errors from Discord propagate and leave the stored hash
    untouched, so the next start tries again.
    """
    new_hash = await commands_hash(tree, dev_guild_id=dev_guild_id)
    if await store.get_meta(COMMANDS_HASH_KEY) == new_hash:
        log.info("Slash commands unchanged, not syncing.")
        return False
    if dev_guild_id is not None:
        guild = discord.Object(id=dev_guild_id)
        tree.copy_global_to(guild=guild)
        synced = await tree.sync(guild=guild)
        log.info("Synced %d slash commands to development server %s.", len(synced), dev_guild_id)
    else:
        synced = await tree.sync()
        log.info("Synced %d slash commands globally.", len(synced))
    await store.set_meta(COMMANDS_HASH_KEY, new_hash)
    return True
