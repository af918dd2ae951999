"""Stopping a service's background task."""

from __future__ import annotations

import asyncio

from bot.background import stop_task


async def test_stop_task_cancels_and_waits_for_the_task_to_end() -> None:
    ended: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # cleanup that takes a moment: stop_task waits for it
            ended.append("cleaned up")

    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled() and ended == ["cleaned up"]


async def test_stop_task_of_nothing_does_nothing() -> None:
    await stop_task(None)
