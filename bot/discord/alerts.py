"""Alerts for a server's admins, posted in the channel chosen with `/quota alerts`.

Sent: when 80 % and 100 % of the server's budget (images or dollars, whichever is further) are reached, once per
budget period each; when RunComfy says the bot's account is out of credit and when it works again (to every server
with an alert channel); when a set's outcome is unknown (it may have been billed). A failed post is logged and
dropped: alerts never hold up jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import discord

from bot.discord import money_format
from bot.discord.i18n import Text
from bot.discord.server_language import ServerLanguages
from bot.domain import periods
from bot.domain.job_state import JobState
from bot.engine.quotas import Quotas
from bot.store.database import Job
from bot.store.money import MoneyStore

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)
_SEEN_LIMIT = 10_000


class Alerts:
    def __init__(
        self,
        bot: discord.Client,
        quotas: Quotas,
        money: MoneyStore,
        clock: Callable[[], float],
        languages: ServerLanguages | None = None,
    ) -> None:
        self._bot = bot
        self._languages = languages or ServerLanguages(bot)
        self._quotas = quotas
        self._money = money
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()

    def job_changed(self, job: Job) -> None:
        """Called with every job change the Discord side shows; looks at new sets and endings only."""
        if job.state is not JobState.SUBMITTED and not job.state.terminal:
            return
        key = (job.id, job.state.value)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        self._spawn(self._job_alerts(job))

    async def credit_changed(self, out_of_credit: bool) -> None:
        text = money_format.OUT_OF_CREDIT_ALERT if out_of_credit else money_format.CREDIT_BACK_ALERT
        for guild_id, channel_id in await self._money.alert_channels():
            await self._post(guild_id, channel_id, text)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine, name="alerts")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _job_alerts(self, job: Job) -> None:
        try:
            channel_id = await self._money.alert_channel(job.guild_id)
            if channel_id is None:
                return
            if job.state is JobState.UNKNOWN:
                sent_at = job.submitted_at or job.created_at
                await self._post(job.guild_id, channel_id, money_format.outcome_unknown_alert(job.user_id, sent_at))
            await self._budget_alerts(job.guild_id, channel_id)
        except Exception:
            log.exception("alerts for job %s failed", job.id)

    async def _budget_alerts(self, guild_id: int, channel_id: int) -> None:
        percent = await self.budget_percent(guild_id)
        if percent is None:
            return
        guild = await self._quotas.guild_settings(guild_id)
        start, _ = periods.period_bounds(guild.budget_period or guild.period, self._clock())
        for threshold in THRESHOLDS:
            if percent >= threshold and await self._money.first_alert(guild_id, start, threshold, self._clock()):
                reached = 100 if percent >= 100 else threshold
                await self._post(guild_id, channel_id, money_format.budget_alert(reached, guild))
                if percent >= 100:
                    break

    async def budget_percent(self, guild_id: int) -> int | None:
        """How much of the server's budget this period is used or reserved, in whole percent; None: no budget."""
        guild = await self._quotas.guild_settings(guild_id)
        shares: list[int] = []
        if guild.budget_images is not None:
            used = await self._quotas.guild_usage(guild_id)
            shares.append(100 if not guild.budget_images else 100 * used // guild.budget_images)
        if guild.budget_usd_micros is not None:
            spent, held = await self._quotas.guild_spend(guild_id)
            shares.append(100 if not guild.budget_usd_micros else 100 * (spent + held) // guild.budget_usd_micros)
        return max(shares) if shares else None

    async def _post(self, guild_id: int, channel_id: int, text: Text) -> None:
        """Post an alert in the server's language (the admins chose it, or it is the server's own)."""
        text_in_language = text.in_language(self._languages.of(guild_id))
        try:
            channel: Any = self._bot.get_channel(channel_id) or await self._bot.fetch_channel(channel_id)
            await channel.send(text_in_language, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, discord.ClientException) as exc:
            log.warning("an alert could not be posted in channel %s: %s", channel_id, exc)
