"""Dollar amounts as whole micro-dollars (USD 0.03 = 30_000): exact sums, no float arithmetic.

Numbers RunComfy sends are untrusted: `usd_from_upstream` takes only a finite, non-negative JSON number
below a bound and returns None for anything else (a string, a boolean, NaN, a negative or huge value).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MICROS_PER_USD = 1_000_000
MAX_PRICE_PER_IMAGE_MICROS = 10 * MICROS_PER_USD  # no per-image price above USD 10 is believed
MAX_JOB_COST_MICROS = 1_000 * MICROS_PER_USD  # nor a job costing more than USD 1,000
MAX_BUDGET_MICROS = 1_000_000_000 * MICROS_PER_USD


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


def parse_usd(text: str, *, name: str, maximum: int = MAX_BUDGET_MICROS) -> int:
    """A dollar amount typed by a person ("0.03", "$25", "1,000.50") as micro-dollars; ValueError if unfit."""
    cleaned = text.strip().removeprefix("$").replace(",", "").strip()
    if cleaned.upper().startswith("USD"):
        cleaned = cleaned[3:].strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{name} must be a dollar amount like 0.03 (got {text!r}).") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a dollar amount of 0 or more (got {text!r}).")
    micros = micros_of(amount) if amount <= maximum else maximum + 1  # bounded before scaling: 1e30 stays exact
    if micros > maximum:
        raise ValueError(f"{name} must be at most {format_usd(maximum)} (got {text!r}).")
    return micros


def format_usd(micros: int) -> str:
    """Like "$12.34"; amounts with fractions of a cent keep the digits they need ("$0.0035")."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{fraction:06d}".rstrip("0")
    digits = digits.ljust(2, "0")
    return f"{sign}${whole:,}.{digits}"


def plain_usd(micros: int) -> str:
    """Like "12.340000", for CSV files and settings, six decimals, no symbol or separators."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{fraction:06d}"
