"""The model's price (`GET /v1/models/{model_id}`) and a job's cost (`include_cost=true`), read defensively.

RunComfy's own client treats a missing, negative or non-finite price, or an answer for another model, as "price
unavailable". The unit for image models is per output image; its exact spelling is not documented, so `image` and
`output` (singular, plural, with or without "per") are accepted and anything else is unavailable too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MICROS_PER_USD = 1_000_000
MAX_PRICE_PER_IMAGE_MICROS = 10 * MICROS_PER_USD  # no per-image price above USD 10 is believed
MAX_JOB_COST_MICROS = 1_000 * MICROS_PER_USD  # nor a job costing more than USD 1,000


def micros_of(amount: Decimal) -> int:
    """`amount` dollars as micro-dollars, rounded half up to the nearest micro-dollar."""
    return int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usd_from_upstream(value: Any, *, maximum: int) -> int | None:
    """A dollar amount sent by RunComfy as micro-dollars, or None if it is not a plausible amount."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value < 0 or value > maximum / MICROS_PER_USD + 1:
        return None
    micros = micros_of(Decimal(str(value)))  # str(): the decimal the JSON sender wrote, not the float's binary value
    return micros if micros <= maximum else None


_PER_IMAGE_UNITS = {"image", "images", "output", "outputs"}
MAX_NOTE_CHARS = 200


@dataclass(frozen=True)
class ModelPrice:
    """The quoted price; `per_image_micros` is None when the answer held no usable per-image price (`problem`)."""

    per_image_micros: int | None
    unit: str | None
    note: str | None
    problem: str | None = None


def _short(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unit_word(unit: str) -> str:
    word = unit.strip().lower().replace("_", " ").replace("/", " ")
    return word.removeprefix("per ").strip()


def parse_model_price(body: dict[str, Any], model_id: str) -> ModelPrice:
    """The per-image price in an answer of the model endpoint, or the reason it has none."""
    unit, note = _short(body.get("price_unit"), 40), _short(body.get("pricing_note"), MAX_NOTE_CHARS)
    if body.get("model_id") != model_id:
        return ModelPrice(None, unit, note, "the answer is about another model")
    micros = usd_from_upstream(body.get("base_price_usd"), maximum=MAX_PRICE_PER_IMAGE_MICROS)
    if micros is None:
        return ModelPrice(None, unit, note, "no usable base_price_usd")
    if unit is None or _unit_word(unit) not in _PER_IMAGE_UNITS:
        return ModelPrice(None, unit, note, "the price is not per image")
    return ModelPrice(micros, unit, note)


def parse_cost(body: dict[str, Any]) -> int | None:
    """A job's actual cost in micro-dollars, or None if the result carries no believable one."""
    return usd_from_upstream(body.get("cost"), maximum=MAX_JOB_COST_MICROS)
