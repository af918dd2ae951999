"""The price per image the bot quotes, and whether the RunComfy account has credit.

The price is read from RunComfy (`GET /v1/models/{model_id}`, free) at start and at most hourly after; the last
good one is kept in the database (meta `price_per_image_micros`). Which price is used:
- RunComfy answered with a usable per-image price: that one;
- RunComfy answered without one (no price, another unit, a bad number): `PRICE_PER_IMAGE_USD`, logged as such;
- RunComfy could not be asked: the last good price from the database, else `PRICE_PER_IMAGE_USD`.

When a submit is answered 402 (insufficient balance) the account is marked out of credit: new jobs are refused up
front until the price call, repeated every `probe_seconds`, shows the account works again. Listeners hear both
changes (the Discord side tells the admins).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.background import stop_task
from bot.domain.money import format_usd
from bot.runcomfy.client import InsufficientBalanceError, ModelPrice, RunComfyError
from bot.runcomfy.price import MAX_PRICE_PER_IMAGE_MICROS

log = logging.getLogger(__name__)

PRICE_KEY = "price_per_image_micros"
PRICE_READ_AT_KEY = "price_read_at"
REFRESH_SECONDS = 3600.0
PROBE_SECONDS = 180.0


class PriceSource(enum.Enum):
    RUNCOMFY = "runcomfy"  # quoted by RunComfy at the last read
    STORED = "stored"  # the last good quote, kept in the database (RunComfy could not be asked since)
    SETTING = "setting"  # PRICE_PER_IMAGE_USD


class MetaStore(Protocol):
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...


class PriceClient(Protocol):  # the RunComfy client, as far as prices go
    async def model_price(self) -> ModelPrice: ...


CreditListener = Callable[[bool], Awaitable[None]]  # called with True when credit runs out, False when it is back


class PriceBook:
    """The current price per image (micro-dollars) and the account's credit state; one per process."""

    def __init__(
        self,
        client: PriceClient,
        meta: MetaStore,
        fallback_micros: int,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        probe_seconds: float = PROBE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._meta = meta
        self._fallback = fallback_micros
        self._refresh_seconds = refresh_seconds
        self.probe_seconds = probe_seconds
        self._clock = clock
        self.per_image_micros = fallback_micros
        self.source = PriceSource.SETTING
        self.problem: str | None = None  # why RunComfy's quote is not used, if it is not
        self.out_of_credit = False
        self._listeners: list[CreditListener] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    def price(self) -> int:
        return self.per_image_micros

    def on_credit_change(self, listener: CreditListener) -> None:
        self._listeners.append(listener)

    async def load(self) -> None:
        """Take the last good price from the database (until RunComfy is asked)."""
        stored = await self._meta.get_meta(PRICE_KEY)
        if stored is not None and stored.isdigit() and int(stored) <= MAX_PRICE_PER_IMAGE_MICROS:
            self.per_image_micros, self.source = int(stored), PriceSource.STORED

    async def refresh(self) -> bool:
        """Ask RunComfy for the price; True if the account answered (it has credit, or no way to tell)."""
        try:
            quote = await self._client.model_price()
        except InsufficientBalanceError:
            await self.mark_out_of_credit()
            return False
        except RunComfyError as exc:
            if self.source is not PriceSource.RUNCOMFY:
                log.warning("RunComfy's price could not be read (%s); %s", exc, self._describe())
            return False
        if quote.per_image_micros is None:
            self.per_image_micros, self.source, self.problem = self._fallback, PriceSource.SETTING, quote.problem
            log.warning("RunComfy quotes no usable per-image price (%s); %s", quote.problem, self._describe())
        else:
            changed = quote.per_image_micros != self.per_image_micros or self.source is not PriceSource.RUNCOMFY
            self.per_image_micros, self.source, self.problem = quote.per_image_micros, PriceSource.RUNCOMFY, None
            await self._keep(quote.per_image_micros)
            (log.info if changed else log.debug)("price per image: %s (quoted by RunComfy)", self._amount())
        await self._credit_back()
        return True

    async def _keep(self, micros: int) -> None:
        try:
            await self._meta.set_meta(PRICE_KEY, str(micros))
            await self._meta.set_meta(PRICE_READ_AT_KEY, str(int(self._clock())))
        except Exception as exc:  # a full disk, say: the price in memory is still right
            log.warning("the price could not be kept in the database (%s)", exc)

    async def mark_out_of_credit(self) -> None:
        """RunComfy answered 402: refuse new jobs until a probe succeeds (checked every `probe_seconds`)."""
        if self.out_of_credit:
            return
        self.out_of_credit = True
        log.error("RunComfy says the account is out of credit; new jobs are refused until it is topped up")
        self._wake.set()
        await self._tell(True)

    async def _credit_back(self) -> None:
        if not self.out_of_credit:
            return
        self.out_of_credit = False
        log.warning("RunComfy accepts the account again; new jobs are taken again")
        await self._tell(False)

    async def _tell(self, out: bool) -> None:
        for listener in list(self._listeners):
            try:
                await listener(out)
            except Exception:
                log.exception("a credit listener failed")

    def _amount(self) -> str:
        return format_usd(self.per_image_micros)

    def _describe(self) -> str:
        if self.source is PriceSource.STORED:
            return f"the last price read, {self._amount()} per image, is used"
        return f"PRICE_PER_IMAGE_USD ({self._amount()} per image) is used"

    # ---- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="price-book")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        await self._refresh_logged()
        while True:
            pause = self.probe_seconds if self.out_of_credit else self._refresh_seconds
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
                # Woken because credit ran out: wait one probe interval before the first probe.
                await asyncio.sleep(self.probe_seconds)
            await self._refresh_logged()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("reading RunComfy's price failed")
