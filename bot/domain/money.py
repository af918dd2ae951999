"""Dollar amounts as whole micro-dollars (USD 0.03 = 30_000): exact sums, no float arithmetic.

Numbers RunComfy sends are read by the client (`bot.runcomfy.price`, in the same unit): only a finite,
non-negative JSON number below a bound is taken there.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000  # the same unit as bot.runcomfy.price's (a test checks they agree)
MAX_BUDGET_MICROS = 1_000_000_000 * MICROS_PER_USD


def micros_of(amount: Decimal) -> int:
    """`amount` dollars as micro-dollars, rounded half up to the nearest micro-dollar."""
    return int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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
