"""The bot runs on uvloop where it is installed, and on asyncio's own loop where it is not."""

from __future__ import annotations

import sys

from bot import event_loop
from bot.discord import runner


async def _kind() -> str:
    return event_loop.loop_name()


def test_the_bot_runs_on_uvloop_where_it_is_installed() -> None:
    assert event_loop.run(_kind()) == "uvloop"


def test_without_uvloop_the_bot_falls_back_to_asyncio(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` meets on Windows
    assert event_loop.loop_factory() is None
    assert event_loop.run(_kind()) == "asyncio"


def test_the_run_command_uses_that_loop(monkeypatch) -> None:
    seen: list[str] = []

    async def fake_run_bot(settings) -> int:
        seen.append(event_loop.loop_name())
        return 0

    monkeypatch.setattr(runner, "load_settings", lambda require: object())
    monkeypatch.setattr(runner, "configure_logging", lambda settings: None)
    monkeypatch.setattr(runner, "run_bot", fake_run_bot)
    assert runner.main() == 0
    assert seen == ["uvloop"]
