"""Liveness: the running bot writes a heartbeat file; `seedream-bot health` reads its age.

The file holds one JSON object, `{"time": <unix seconds>, ...status}`, replaced atomically so a reader never
sees half of it. Docker's HEALTHCHECK runs `seedream-bot health`: exit 0 healthy, 1 unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.background import stop_task
from bot.settings import SettingsError, load_settings

log = logging.getLogger(__name__)

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1  # Docker reserves 2, so every failure is 1.

StatusSource = Callable[[], Mapping[str, Any]]


def write_heartbeat(path: Path, payload: Mapping[str, Any]) -> None:
    """Write `payload` as JSON to `path` atomically (temporary file in the same folder, then os.replace)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(dict(payload), separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def read_heartbeat_time(path: Path) -> float:
    """The unix time stored in the heartbeat file; a bare number is accepted too.

    Raises FileNotFoundError if missing, ValueError if the content is not a heartbeat.
    """
    text = path.read_text(encoding="utf-8").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    value = data.get("time") if isinstance(data, dict) else data
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("no time field")
    return float(value)


class Heartbeat:
    """Writes the heartbeat file now and then every `interval` seconds until stopped.

    `status`, if given, is called on the event loop before each write; its small mapping (for example
    `{"guilds": 3, "jobs_in_flight": 1}`) is stored beside the time. `alive`, if given, is asked first:
    while it says no (the bot lost its connection to Discord) nothing is written, so the file goes stale.
    """

    def __init__(
        self,
        path: Path,
        interval: float = 30.0,
        status: StatusSource | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.path = Path(path)
        self.interval = interval
        self._status = status
        self._alive = alive
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start beating (needs a running event loop). Calling it while running does nothing."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        """Stop beating; the file is left as it is and goes stale."""
        task, self._task = self._task, None
        await stop_task(task)

    async def beat(self) -> None:
        """Write one heartbeat now. A failure is logged (once per streak), never raised."""
        if self._alive is not None and not self._alive():
            log.debug("not connected to Discord; heartbeat skipped")
            return
        payload: dict[str, Any] = {}
        if self._status is not None:
            try:
                payload.update(self._status())
            except Exception:
                log.exception("heartbeat status failed; writing the time only")
                payload.clear()
        payload["time"] = time.time()
        try:
            await self._write(payload)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot write heartbeat file %s: %s", self.path, exc.strerror or exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat file %s written again", self.path)
        self._failing = False

    async def _write(self, payload: Mapping[str, Any]) -> None:
        # A write already handed to the thread is finished before a cancellation goes on, so once stop()
        # returns the file no longer changes.
        write = asyncio.ensure_future(asyncio.to_thread(write_heartbeat, self.path, payload))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                await write
            raise

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)


def heartbeat_problem(path: Path, max_age: float, now: float | None = None) -> str | None:
    """None if the heartbeat is fresher than `max_age` seconds, else one line saying what is wrong."""
    try:
        written = read_heartbeat_time(path)
    except FileNotFoundError:
        return f"unhealthy: heartbeat file {path} is missing (is the bot running and connected?)"
    except (OSError, UnicodeDecodeError) as exc:
        return f"unhealthy: heartbeat file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}"
    except ValueError:
        return f"unhealthy: heartbeat file {path} is not a heartbeat"
    age = (time.time() if now is None else now) - written
    if age > max_age:
        return f"unhealthy: heartbeat stale since {age:.0f} s (limit {max_age:g} s)"
    return None


def main(max_age: float = 90.0) -> int:
    """`seedream-bot health`: exit 0 if the heartbeat is fresh, else print why and exit 1."""
    try:
        settings = load_settings(require="none", create_dirs=False)
    except SettingsError as exc:
        print(f"unhealthy: {exc}")
        return EXIT_UNHEALTHY
    problem = heartbeat_problem(settings.heartbeat_path, max_age)
    if problem:
        print(problem)
        return EXIT_UNHEALTHY
    return EXIT_HEALTHY
