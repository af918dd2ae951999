"""Dollar amounts: exact micro-dollars, and untrusted upstream numbers bounded."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import money
from bot.domain.money import format_usd, micros_of, parse_usd, plain_usd
from bot.runcomfy import price
from bot.runcomfy.price import MAX_PRICE_PER_IMAGE_MICROS, usd_from_upstream


@pytest.mark.parametrize(
    ("value", "micros"),
    [(0.03, 30_000), (0, 0), (1, 1_000_000), (0.0000005, 1), (0.1 + 0.2, 300_000), (2.5, 2_500_000)],
)
def test_upstream_numbers_become_exact_micro_dollars(value, micros):
    assert usd_from_upstream(value, maximum=10**12) == micros


@pytest.mark.parametrize(
    "value", ["0.03", None, True, -0.01, float("nan"), float("inf"), [0.03], {"usd": 1}, 11, 1e300]
)
def test_untrusted_upstream_numbers_are_refused(value):
    assert usd_from_upstream(value, maximum=MAX_PRICE_PER_IMAGE_MICROS) is None


@pytest.mark.parametrize("amount", ["0", "0.03", "0.0000005", "0.0000004999", "12.3456785", "1000000"])
def test_the_domain_and_the_client_agree_on_micro_dollars(amount):
    assert money.MICROS_PER_USD == price.MICROS_PER_USD
    assert micros_of(Decimal(amount)) == price.micros_of(Decimal(amount))


def test_ten_thousand_small_costs_add_up_exactly():
    costs = [usd_from_upstream(0.01, maximum=10**9) for _ in range(10_000)]
    assert sum(costs) == 100 * 1_000_000  # with floats: 100.00000000001425


@pytest.mark.parametrize(
    ("text", "micros"), [("0.03", 30_000), ("$25", 25_000_000), ("1,000.50", 1_000_500_000), ("USD 2", 2_000_000)]
)
def test_typed_dollar_amounts(text, micros):
    assert parse_usd(text, name="budget") == micros


@pytest.mark.parametrize("text", ["", "abc", "-1", "NaN", "Infinity", "1e30"])
def test_bad_typed_amounts_say_what_is_expected(text):
    with pytest.raises(ValueError, match="budget must be"):
        parse_usd(text, name="budget")


@pytest.mark.parametrize(
    ("micros", "shown", "plain"),
    [(30_000, "$0.03", "0.030000"), (3_500, "$0.0035", "0.003500"), (1_234_567_000_000, "$1,234,567.00",
     "1234567.000000"), (0, "$0.00", "0.000000"), (-20_000, "-$0.02", "-0.020000")],
)  # fmt: skip
def test_formatting(micros, shown, plain):
    assert (format_usd(micros), plain_usd(micros)) == (shown, plain)
