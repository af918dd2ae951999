"""`seedream-bot run`: runs the Discord bot until stopped (Ctrl+C or SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

import aiohttp
import discord

from bot import event_loop
from bot.cli.check import check_runcomfy
from bot.discord.bot import SeedreamBot
from bot.logging_setup import configure_logging
from bot.settings import Settings, load_settings
from bot.store.database import Storage, StorageError
from bot.store.lock import DatabaseLock, DatabaseLocked, DatabaseLockError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_SETTINGS = 2
EXIT_UNUSABLE_DATABASE = 2
START_CHECK_SECONDS = 15.0

BotFactory = Callable[..., SeedreamBot]  # (settings, storage=...)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
log = logging.getLogger(__name__)


async def _shut_down(bot: SeedreamBot) -> None:
    """Stop taking commands, let database writes finish, close everything; unfinished jobs resume at next start."""
    if bot.is_closed():
        return
    log.info("Shutting down: unfinished jobs will resume at the next start.")
    await bot.close()


async def runcomfy_token_refused(settings: Settings) -> bool:
    """Ask RunComfy about the token as `seedream-bot check` does (free). A refusal is printed; if RunComfy
    cannot answer, only a warning is logged: the bot can start and jobs wait for RunComfy."""
    result = await check_runcomfy(
        settings.runcomfy_api_token, settings.runcomfy_base_url, limit_seconds=START_CHECK_SECONDS
    )
    if result.refused:
        print(f"seedream-bot: RunComfy refused RUNCOMFY_API_TOKEN: {result.detail}", file=sys.stderr)
        return True
    if not result.ok:
        log.warning("RunComfy could not confirm the API token at start (%s); starting anyway", result.detail)
    return False


async def run_bot(settings: Settings, bot_factory: BotFactory = SeedreamBot) -> int:
    """Check the database and the RunComfy token, then run the bot until it is closed or the process is asked
    to stop; return the exit code.

    The database is locked and opened before logging in to Discord: a database that is held by another
    bot, or cannot be used, stops the start with one line (exit 2).
    """
    lock = None
    if not settings.database_url:  # one bot per SQLite file; on PostgreSQL several processes may share the database
        try:
            lock = await asyncio.to_thread(DatabaseLock.acquire, settings.database_path)
        except (DatabaseLocked, DatabaseLockError) as exc:
            print(f"seedream-bot: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE_DATABASE
    try:
        try:
            storage = await Storage.open(settings.database)
        except StorageError as exc:
            print(f"seedream-bot: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE_DATABASE
        try:
            return await _run_with_storage(settings, bot_factory, storage)
        finally:
            await storage.close()
    finally:
        if lock is not None:
            await asyncio.to_thread(lock.release)


async def _run_with_storage(settings: Settings, bot_factory: BotFactory, storage: Storage) -> int:
    if await runcomfy_token_refused(settings):
        return EXIT_SETTINGS
    log.info("running on the %s event loop", event_loop.loop_name())
    bot = bot_factory(settings, storage=storage)
    loop = asyncio.get_running_loop()
    # No signal handlers on Windows, nor off the main thread (asyncio raises RuntimeError there, uvloop ValueError).
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for stop_signal in STOP_SIGNALS:
            loop.add_signal_handler(stop_signal, lambda: asyncio.ensure_future(_shut_down(bot)))
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except discord.LoginFailure:
        print(
            "seedream-bot: Discord rejected DISCORD_TOKEN; copy the bot token again from the Discord developer portal "
            "(Bot > Reset Token).",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except discord.PrivilegedIntentsRequired:
        print(
            "seedream-bot: Discord refused the connection: the bot asked for an intent it may not use.", file=sys.stderr
        )
        return EXIT_FAILURE
    except discord.HTTPException as exc:
        print(f"seedream-bot: Discord answered HTTP {exc.status} while starting; try again later.", file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, aiohttp.ClientError, discord.GatewayNotFound) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        print(f"seedream-bot: cannot reach Discord at {settings.discord_api_base_url}: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for stop_signal in STOP_SIGNALS:
                loop.remove_signal_handler(stop_signal)
    return EXIT_OK


def main() -> int:
    settings = load_settings(require="bot")
    configure_logging(settings)
    return event_loop.run(run_bot(settings))
