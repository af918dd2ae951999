"""The Discord bot: wires the services, loads the cogs and keeps the slash commands in sync."""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.cli.health import Heartbeat
from bot.discord.alerts import Alerts
from bot.discord.presenter import DiscordPresenter
from bot.discord.sync import InMemoryMetaStore, MetaStore, sync_commands
from bot.discord.tree import SeedreamTree
from bot.engine.jobs import JobService
from bot.engine.pricing import PriceBook
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.engine.tracker import Tracker, TrackerConfig
from bot.runcomfy.client import RunComfyClient
from bot.settings import Settings, secrets_of
from bot.store.database import Storage
from bot.store.money import MoneyStore

log = logging.getLogger(__name__)

DEFAULT_DISCORD_API_BASE_URL = Settings.discord_api_base_url


def bot_intents() -> discord.Intents:
    """Only what slash commands and buttons need: guilds (no privileged intents, no message events)."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class SeedreamBot(commands.Bot):
    EXTENSIONS: tuple[str, ...] = (
        "cogs.general",
        "cogs.imagine",
        "cogs.member",
        "cogs.quota_admin",
        "cogs.prompt_filter",
    )

    def __init__(self, settings: Settings, *, guild_ready_timeout: float = 2.0, **services: Any) -> None:
        """`services` are attached as attributes (e.g. `meta_store=...`), so tests and callers can inject them."""
        # The bot has no voice features: the warnings about missing voice libraries would only mislead.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            tree_cls=SeedreamTree,
        )
        self.settings = settings
        self.meta_store: MetaStore = InMemoryMetaStore()
        self.commands_synced: bool | None = None
        self.accepting_commands = True
        self._resumed = False
        self._services_stopped = False
        self._meta_store_injected = "meta_store" in services
        for name, service in services.items():
            if not hasattr(self, name) or name == "meta_store":
                setattr(self, name, service)
            else:
                raise TypeError(f"service name {name!r} clashes with a bot attribute")
        self._custom_api = settings.discord_api_base_url != DEFAULT_DISCORD_API_BASE_URL
        if self._custom_api:
            discord.http.Route.BASE = settings.discord_api_base_url

    async def setup_hook(self) -> None:
        await self.start_services()
        for extension in self.EXTENSIONS:
            await self.load_extension(extension)
        try:
            self.commands_synced = await sync_commands(
                self.tree, self.meta_store, dev_guild_id=self.settings.dev_guild_id
            )
        except discord.HTTPException as exc:
            # The commands registered earlier keep working; the next start tries again.
            log.warning("Could not sync slash commands (HTTP %s): %s", exc.status, exc.text)
            self.commands_synced = False

    async def connect(self, *, reconnect: bool = True) -> None:
        if self._custom_api:
            # With a custom API the gateway must come from that API too, also after an invalidated session.
            _shards, url, _limits = await self.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await super().connect(reconnect=reconnect)

    async def start_services(self) -> None:
        """Open storage, the RunComfy client and the job tracker (services injected at construction are kept)."""
        settings = self.settings
        if getattr(self, "storage", None) is None:
            self.storage = await Storage.open(settings.database_path)
        if not self._meta_store_injected:
            self.meta_store = self.storage
        if getattr(self, "runcomfy", None) is None:
            self.runcomfy = RunComfyClient(
                settings.runcomfy_api_token,
                settings.runcomfy_base_url,
                max_concurrent_requests=settings.runcomfy_max_concurrent_requests,
                secrets=secrets_of(settings),
                download_timeout=settings.download_timeout_seconds,
            )
        if getattr(self, "prices", None) is None:
            self.prices = PriceBook(self.runcomfy, self.storage, settings.price_per_image_usd_micros)
            await self.prices.load()
        self.quotas = Quotas(self.storage, QuotaDefaults.from_settings(settings), price_per_image=self.prices.price)
        self.money = MoneyStore(self.storage)
        self.alerts = Alerts(self, self.quotas, self.money, self.storage.clock)
        self.prices.on_credit_change(self.alerts.credit_changed)
        self.presenter = DiscordPresenter(self, self.storage, edit_interval=settings.status_edit_interval_seconds)
        self.presenter.watchers.append(self.alerts.job_changed)
        workdir = settings.database_path.parent / "downloads"
        self.tracker = Tracker(
            self.storage, self.runcomfy, self.presenter, TrackerConfig.from_settings(settings, workdir)
        )
        self.jobs = JobService(self.storage, self.quotas, self.runcomfy, self.tracker, prices=self.prices)
        self.heartbeat = Heartbeat(settings.heartbeat_path, status=self._health_status, alive=self._connected)
        self._resumed = False

    def _connected(self) -> bool:
        socket = getattr(self.ws, "socket", None)
        return not self.is_closed() and socket is not None and not socket.closed

    def _health_status(self) -> dict[str, Any]:
        return {"guilds": len(self.guilds), "jobs_in_flight": self.tracker.in_flight}

    async def stop_services(self) -> None:
        """Close what `start_services` opened; called once, before the Discord connection closes.

        Unfinished jobs stay in the database and are resumed at the next start.
        """
        self.accepting_commands = False
        if getattr(self, "prices", None) is not None:
            await self.prices.close()
        if getattr(self, "alerts", None) is not None:
            await self.alerts.close()
        if getattr(self, "tracker", None) is not None:
            await self.tracker.close()
        if getattr(self, "heartbeat", None) is not None:
            await self.heartbeat.stop()
        if getattr(self, "runcomfy", None) is not None:
            await self.runcomfy.aclose()
        if getattr(self, "storage", None) is not None:
            await self.storage.close()

    async def close(self) -> None:
        if not self._services_stopped:
            self._services_stopped = True
            await self.stop_services()
        await super().close()

    async def on_ready(self) -> None:
        log.info("Connected as %s (id %s) to %d servers.", self.user, self.user and self.user.id, len(self.guilds))
        if not self._resumed and getattr(self, "tracker", None) is not None:
            # Jobs are resumed once the guilds are known, so their channels and upload limits are too.
            self._resumed = True
            self.heartbeat.start()
            self.prices.start()  # reads the price now, then hourly (every few minutes while out of credit)
            await self.tracker.resume()
