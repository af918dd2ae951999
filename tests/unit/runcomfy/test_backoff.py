"""The one backoff rule: doubling pauses up to a cap, and no other module spells its own."""

from __future__ import annotations

import math
import re
from pathlib import Path

from bot.runcomfy.backoff import doubling

BOT = Path(__file__).resolve().parents[3] / "bot"


def test_doubles_from_the_base_up_to_the_cap():
    assert [doubling(0.5, 3.0, n) for n in range(-1, 5)] == [0.5, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert doubling(2.0, math.inf, 3) == 16.0


def test_huge_counts_stay_at_the_cap_without_overflow():
    assert doubling(1.0, 60.0, 10**9) == 60.0


def test_no_module_writes_its_own_exponential_backoff():
    power_of_two = re.compile(r"\b2(\.0)?\s*\*\*")
    offenders = [
        f"{path.relative_to(BOT)}:{number}"
        for path in BOT.rglob("*.py")
        if path.name != "backoff.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if power_of_two.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []
