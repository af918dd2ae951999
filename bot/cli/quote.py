"""The price of a set for `seedream-bot generate` before it is sent, and its cost afterwards."""

from __future__ import annotations

from dataclasses import dataclass

from bot.cli.job import EXIT_API, EXIT_AUTH, error, note
from bot.cli.problems import TOKEN_REFUSED
from bot.domain.money import format_usd
from bot.domain.seedream import SeedreamRequest
from bot.runcomfy.client import AuthError, InsufficientBalanceError, JobResult, RunComfyClient, RunComfyError
from bot.runcomfy.retry import RetryPolicy
from bot.settings import Settings, secrets_of

EXIT_DECLINED = 1
QUOTE_SECONDS = 20.0


@dataclass(frozen=True)
class Quote:
    per_image_micros: int
    from_runcomfy: bool


async def quote(request: SeedreamRequest, settings: Settings) -> Quote | int:
    """Print the set's price (RunComfy's quote, else PRICE_PER_IMAGE_USD); an exit code if it cannot be sent."""
    fallback = settings.price_per_image_usd_micros
    reason = ""
    try:
        retry = RetryPolicy(max_attempts=2, max_total=QUOTE_SECONDS)
        async with RunComfyClient(
            settings.runcomfy_api_token, settings.runcomfy_base_url, retry=retry, secrets=secrets_of(settings)
        ) as client:
            price = await client.model_price()
    except InsufficientBalanceError:
        error("The RunComfy account is out of credit: top up the balance, then try again. Nothing was sent.")
        return EXIT_API
    except AuthError:
        error(TOKEN_REFUSED)
        return EXIT_AUTH
    except RunComfyError as exc:
        price, reason = None, f"RunComfy's price could not be read ({exc})"
    if price is not None and price.per_image_micros is not None:
        chosen = Quote(price.per_image_micros, True)
        source = "quoted by RunComfy"
    else:
        chosen = Quote(fallback, False)
        reason = reason or f"RunComfy quotes no usable per-image price ({price.problem if price else ''})"
        source = f"PRICE_PER_IMAGE_USD; {reason}"
    total = format_usd(request.images * chosen.per_image_micros)
    note(f"Price: up to {total} for {request.images} image(s) ({format_usd(chosen.per_image_micros)} each, {source}).")
    return chosen


def cost_line(result: JobResult, per_image_micros: int) -> str:
    if result.cost_micros is not None:
        return f"Cost: {format_usd(result.cost_micros)} (billed by RunComfy)."
    estimate = len(result.image_urls) * per_image_micros
    return f"Cost: about {format_usd(estimate)} (estimated: RunComfy gave no cost; {len(result.image_urls)} image(s))."
