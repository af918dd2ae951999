"""The Discord bot: wires the services, loads the cogs and keeps the slash commands in sync.

What the bot is given (storage, the RunComfy client, the price book, where synced commands are remembered) comes
through its constructor; what it builds on them (quotas, presenter, tracker, job service) is created in
`start_services`. Every service is a typed attribute, so cogs and buttons reach them typed through `SeedreamBot`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot import heap
from bot.cli.health import Heartbeat
from bot.discord.alerts import Alerts
from bot.discord.buttons import AgainButton, CancelButton
from bot.discord.presenter import DiscordPresenter
from bot.discord.server_language import ServerLanguages
from bot.discord.sync import InMemoryMetaStore, MetaStore, sync_commands
from bot.discord.translator import CatalogTranslator
from bot.discord.tree import SeedreamTree
from bot.engine.jobs import JobService
from bot.engine.leases import LeaseKeeper
from bot.engine.pricing import PriceBook
from bot.engine.quotas import QuotaDefaults, Quotas
from bot.engine.tracker import Tracker
from bot.engine.tracker_config import TrackerConfig
from bot.runcomfy.client import RunComfyClient
from bot.settings import Settings, secrets_of
from bot.store.database import Storage
from bot.store.languages import LanguageStore
from bot.store.leases import DatabaseCancelSignal, Leases
from bot.store.money import MoneyStore

log = logging.getLogger(__name__)

DEFAULT_DISCORD_API_BASE_URL = Settings.discord_api_base_url


def bot_intents() -> discord.Intents:
    """Only what slash commands and buttons need: guilds (no privileged intents, no message events)."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class SeedreamBot(commands.AutoShardedBot):
    EXTENSIONS: tuple[str, ...] = (
        "cogs.general",
        "cogs.imagine",
        "cogs.member",
        "cogs.quota_admin",
        "cogs.prompt_filter",
    )

    storage: Storage
    runcomfy: RunComfyClient
    prices: PriceBook
    quotas: Quotas
    money: MoneyStore
    languages: ServerLanguages
    alerts: Alerts
    presenter: DiscordPresenter
    tracker: Tracker
    jobs: JobService
    heartbeat: Heartbeat

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage | None = None,
        runcomfy: RunComfyClient | None = None,
        prices: PriceBook | None = None,
        meta_store: MetaStore | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        """Services not given are opened by `start_services` from the settings (the bot then owns them)."""
        # The bot has no voice features: the warnings about missing voice libraries would only mislead.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            tree_cls=SeedreamTree,
            shard_count=settings.shard_count,
        )
        if settings.shard_ids is not None:  # None: every shard of shard_count (the settings checked the ids)
            self.shard_ids = list(settings.shard_ids)
        self.settings = settings
        self._given_storage = storage
        self._given_runcomfy = runcomfy
        self._given_prices = prices
        self._given_meta_store = meta_store
        # What stop_services closes, last opened first; what the bot is given it owns too.
        self._closers: list[Callable[[], Awaitable[None]]] = []
        if storage is not None:
            self._closers.append(storage.close)
        if runcomfy is not None:
            self._closers.append(runcomfy.aclose)
        if prices is not None:
            self._closers.append(prices.close)
        self.meta_store: MetaStore = meta_store or InMemoryMetaStore()
        self.commands_synced: bool | None = None
        self.lease_keeper: LeaseKeeper | None = None
        self.accepting_commands = True
        self._resumed = False
        self._started = False
        self._services_stopped = False
        self._custom_api = settings.discord_api_base_url != DEFAULT_DISCORD_API_BASE_URL
        if self._custom_api:
            discord.http.Route.BASE = settings.discord_api_base_url

    async def setup_hook(self) -> None:
        # The buttons under status messages: registered once, they answer for messages from before a restart too.
        self.add_dynamic_items(CancelButton, AgainButton)
        await self.start_services()
        for extension in self.EXTENSIONS:
            await self.load_extension(extension)
        await self.tree.set_translator(CatalogTranslator())
        if not self.settings.syncs_commands:
            log.info("Slash commands are left to another process (SYNC_COMMANDS=%s).", self.settings.sync_commands)
            return
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
        if self._given_storage is None:
            self.storage = await Storage.open(settings.database)
            self._closers.append(self.storage.close)
        else:
            self.storage = self._given_storage
        if self._given_meta_store is None:
            self.meta_store = self.storage
        if self._given_runcomfy is None:
            self.runcomfy = RunComfyClient(
                settings.runcomfy_api_token,
                settings.runcomfy_base_url,
                max_concurrent_requests=settings.runcomfy_max_concurrent_requests,
                secrets=secrets_of(settings),
                download_timeout=settings.download_timeout_seconds,
            )
            self._closers.append(self.runcomfy.aclose)
        else:
            self.runcomfy = self._given_runcomfy
        if self._given_prices is None:
            self.prices = PriceBook(self.runcomfy, self.storage, settings.price_per_image_usd_micros)
            self._closers.append(self.prices.close)
            await self.prices.load()
        else:
            self.prices = self._given_prices
        self.quotas = Quotas(self.storage, QuotaDefaults.from_settings(settings), price_per_image=self.prices.price)
        self.money = MoneyStore(self.storage)
        self.languages = ServerLanguages(self, LanguageStore(self.storage))
        await self.languages.load()
        self.alerts = Alerts(self, self.quotas, self.money, self.storage.clock, self.languages)
        self._closers.append(self.alerts.close)
        self.prices.on_credit_change(self.alerts.credit_changed)
        self.presenter = DiscordPresenter(
            self,
            self.storage,
            edit_interval=settings.status_edit_interval_seconds,
            queue_edit_interval=settings.status_queue_edit_interval_seconds,
            languages=self.languages,
        )
        self.presenter.watchers.append(self.alerts.job_changed)
        workdir = settings.database_path.parent / "downloads"
        self.tracker = Tracker(
            self.storage, self.runcomfy, self.presenter, TrackerConfig.from_settings(settings, workdir)
        )
        if self.storage_is_shared:
            # Closed after the tracker (closers run last first): leaving hands the unfinished jobs to the others.
            self.lease_keeper = LeaseKeeper(
                Leases(self.storage),
                self.tracker,
                lease=settings.lease_seconds,
                signal=DatabaseCancelSignal(self.storage),
            )
            self.tracker.cancel_listeners.append(self.lease_keeper.cancelled)
            self._closers.append(self.lease_keeper.close)
            await self.lease_keeper.register(settings.shards_text)
        self._closers.append(self.tracker.close)
        self.jobs = JobService(self.storage, self.quotas, self.runcomfy, self.tracker, prices=self.prices)
        self.heartbeat = Heartbeat(settings.heartbeat_path, status=self._health_status, alive=self._connected)
        self._closers.append(self.heartbeat.stop)
        self._resumed = False
        self._started = True

    @property
    def storage_is_shared(self) -> bool:
        """PostgreSQL: other processes may run on the same database (SQLite is held by one, see bot.store.lock)."""
        return self.storage.dialect == "postgresql"

    def _connected(self) -> bool:
        """Every shard of this process has its gateway connection open."""
        shards = self.shards.values()
        return not self.is_closed() and bool(shards) and not any(shard.is_closed() for shard in shards)

    def _health_status(self) -> dict[str, Any]:
        return {"guilds": len(self.guilds), "jobs_in_flight": self.tracker.in_flight}

    async def stop_services(self) -> None:
        """Close what `start_services` opened; called once, before the Discord connection closes.

        Unfinished jobs stay in the database and are resumed at the next start.
        """
        self.accepting_commands = False
        while self._closers:
            await self._closers.pop()()

    async def close(self) -> None:
        if not self._services_stopped:
            self._services_stopped = True
            await self.stop_services()
        await super().close()

    async def on_ready(self) -> None:
        log.info("Connected as %s (id %s) to %d servers.", self.user, self.user and self.user.id, len(self.guilds))
        if not self._resumed and self._started:
            # Jobs are resumed once the guilds are known, so their channels and upload limits are too.
            self._resumed = True
            self.heartbeat.start()
            self.prices.start()  # reads the price now, then hourly (every few minutes while out of credit)
            if self.lease_keeper is None:
                await self.tracker.resume()
            else:  # the jobs of processes that stopped, now and at every heartbeat
                self.lease_keeper.start()
            heap.freeze_startup_objects()


Interaction: TypeAlias = discord.Interaction[SeedreamBot]  # what the cogs and buttons receive
