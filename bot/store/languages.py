"""The language each guild's admins chose for the bot's public messages (none: the server's own language)."""

from __future__ import annotations

from bot.store.database import Storage


class LanguageStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def set_language(self, guild_id: int, language: str | None) -> None:
        await self._storage.write(
            """INSERT INTO guilds (guild_id, language) VALUES (?, ?)
               ON CONFLICT (guild_id) DO UPDATE SET language = excluded.language""",
            (guild_id, language),
        )

    async def languages(self) -> dict[int, str]:
        """Every guild's chosen language (guilds without one are left out)."""
        rows = await self._storage.fetchall("SELECT guild_id, language FROM guilds WHERE language IS NOT NULL")
        return {int(row[0]): str(row[1]) for row in rows}
