"""Shared helpers for the /imagine end-to-end tests: a bot wired to both fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.client import SeedreamBot
from bot.runcomfy import RunComfyClient
from tests.fixtures.runcomfy import fast_retry_policy

FAST = {
    "poll_interval_seconds": 0.05,
    "poll_max_interval_seconds": 0.2,
    "status_edit_interval_seconds": 0.05,
}


async def start_imagine_bot(start_bot, fake_runcomfy, **overrides: Any) -> SeedreamBot:
    client = RunComfyClient(
        fake_runcomfy.token,
        fake_runcomfy.base_url,
        retry=fast_retry_policy(),
        connect_timeout=2.0,
        submit_read_timeout=5.0,
        poll_read_timeout=5.0,
    )
    settings = {**FAST, "runcomfy_base_url": fake_runcomfy.base_url, "runcomfy_api_token": fake_runcomfy.token}
    settings.update(overrides)
    return await start_bot(services={"runcomfy": client}, **settings)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:  # noqa: ASYNC109
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
