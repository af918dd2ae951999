"""Shared set-up for the /imagine benchmarks: the fakes in this process, the bot in a child process.

The bot runs in a child process exactly as `python -m bot run` does (settings from the environment), so psutil
measures its CPU time and memory alone. The fake Discord (REST + gateway) and the fake RunComfy (API + output host)
run on 127.0.0.1 in the bench process, which drives them and takes every timing on its own monotonic clock.

    async with bench_world(plan=JobPlan(queue_seconds=5)) as world:
        interaction = await world.imagine("a lighthouse", images=4, user=1)
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes import discord_payloads as payloads  # noqa: E402 (needs the repository on sys.path)
from tests.fakes.discord import FakeDiscord  # noqa: E402
from tests.fakes.discord_routes import InteractionState, RecordedFile  # noqa: E402
from tests.fakes.runcomfy import FakeJob, FakeRunComfy, JobPlan  # noqa: E402

# Every member may run as many jobs as the bench needs: the benches measure the bot, not the quota refusals.
GENEROUS_QUOTA = {"QUOTA_DEFAULT_IMAGES": "1000000000", "QUOTA_MAX_CONCURRENT_JOBS": "1000000"}
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
IMAGE_NAME = re.compile(r"^seedream_(?P<job>[0-9a-zA-Z_-]+)_(?P<index>\d+)\.\w+$")
FIRST_BENCH_USER_ID = 900_000_000_000_000_000
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`; a benchmark that cannot finish stops with one line saying why (exit status 1)."""
    try:
        return asyncio.run(main)
    except (TimeoutError, RuntimeError) as exc:
        raise SystemExit(f"benchmark stopped: {exc}") from None


# ---- numbers and tables ------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain, aligned text table (floats with two decimals)."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


MIB = 1024 * 1024


def mib(value: float) -> float:
    return value / MIB


# ---- the fake Discord, timed -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePost:
    """One message with images, as the fake Discord received it."""

    arrived: float  # time.monotonic() in this process when the request reached the handler
    job_id: str
    indexes: tuple[int, ...]
    token: str | None  # the interaction token for webhook followups, None for channel messages


class TimedFakeDiscord(FakeDiscord):
    """The fake Discord, noting when interaction callbacks and image messages arrive.

    Uploaded bytes are dropped once counted, so the bench process does not hold every image.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.callback_times: dict[str, float] = {}  # interaction token -> arrival of its first callback
        self.image_posts: list[ImagePost] = []
        self.posts_by_token: dict[str, list[ImagePost]] = {}
        self.status_edits = 0  # edits of a message (the status), through the interaction webhook or in the channel

    async def edit_webhook_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self.status_edits += 1
        return await super().edit_webhook_message(params, payload, files)

    async def edit_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self.status_edits += 1
        return await super().edit_channel_message(params, payload, files)

    async def interaction_callback(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        self.callback_times.setdefault(params["token"], time.monotonic())
        return await super().interaction_callback(params, payload, files)

    async def create_followup(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        arrived = time.monotonic()
        answer = await super().create_followup(params, payload, files)
        self._note_images(arrived, params["token"], files)
        return answer

    async def create_channel_message(self, params: dict[str, str], payload: Any, files: list[RecordedFile]) -> Any:
        arrived = time.monotonic()
        answer = await super().create_channel_message(params, payload, files)
        self._note_images(arrived, None, files)
        return answer

    def _attachment(self, message: dict[str, Any], upload: RecordedFile, described: dict[str, Any]) -> Any:
        attachment = super()._attachment(message, upload, described)
        self.files[int(attachment["id"])] = b""
        return attachment

    def _note_images(self, arrived: float, token: str | None, files: list[RecordedFile]) -> None:
        for upload in files:
            upload.data = b""
        found = [m for m in (IMAGE_NAME.match(f.filename) for f in files) if m is not None]
        if not found:
            return
        post = ImagePost(arrived, found[0]["job"], tuple(int(m["index"]) for m in found), token)
        self.image_posts.append(post)
        if token is not None:
            self.posts_by_token.setdefault(token, []).append(post)


def bench_member(number: int) -> dict[str, Any]:
    """A member payload for a synthetic user (each bench job can come from its own member)."""
    user_id = FIRST_BENCH_USER_ID + number
    return payloads.member(payloads.user(user_id, f"bench{number}"), [])


# ---- the bot in a child process ----------------------------------------------------------------------------------


class BotProcess:
    """The bot, running in a child process against the fakes."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.folder = folder
        self.env = dict(env)
        self.log_path = folder / "bot.log"
        self._proc: asyncio.subprocess.Process | None = None
        self.process: psutil.Process | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self, fake_discord: FakeDiscord) -> None:
        log = await asyncio.to_thread(open, self.log_path, "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            log.close()
        self.process = psutil.Process(self._proc.pid)
        heartbeat = Path(self.env["HEARTBEAT_PATH"])

        def ready() -> bool:
            if self._proc is not None and self._proc.returncode is not None:
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"the bot exited with {self._proc.returncode}; its log ends:\n{tail}")
            synced = any(c["name"] == "imagine" for defs in fake_discord.commands.values() for c in defs)
            return synced and heartbeat.exists()  # the heartbeat starts in on_ready

        await wait_until(ready, READY_TIMEOUT, what="the bot to be ready")

    async def stop(self) -> int | None:
        """Ask the bot to stop (SIGTERM, as Docker does); kill it if it does not within STOP_TIMEOUT."""
        if self._proc is None or self._proc.returncode is not None:
            return None if self._proc is None else self._proc.returncode
        self._proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self._proc.kill()
            return await self._proc.wait()

    def rss(self) -> int:
        assert self.process is not None
        return self.process.memory_info().rss

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = self.process.cpu_times()
        return times.user + times.system

    def peak_rss(self) -> int | None:
        """The kernel's high-water mark of the resident set (VmHWM), if this system reports it."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
        return int(found.group(1)) * 1024 if found else None

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not possible."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    async def log_problems(self) -> list[str]:
        """Log lines at ERROR or above, and traceback starts."""
        try:
            text = await asyncio.to_thread(self.log_path.read_text, errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread (so the event loop's work does not delay it)."""

    def __init__(self, bot: BotProcess, interval: float = 0.002) -> None:
        self._bot = bot
        self._interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic(), self._bot.rss()))
            time.sleep(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((rss for _t, rss in self.samples), default=0)

    def mean_interval_ms(self) -> float:
        if len(self.samples) < 2:
            return float("nan")
        return (self.samples[-1][0] - self.samples[0][0]) / (len(self.samples) - 1) * 1000


# ---- the whole world -----------------------------------------------------------------------------------------------


@dataclass
class World:
    discord: TimedFakeDiscord
    runcomfy: FakeRunComfy
    bot: BotProcess
    folder: Path
    interactions: dict[str, InteractionState] = field(default_factory=dict)  # by prompt

    async def imagine(self, prompt: str, *, images: int, user: int = 0) -> InteractionState:
        """Dispatch `/imagine prompt images` from the synthetic member `user`."""
        state = await self.discord.run_command("imagine", {"prompt": prompt, "images": images}, by=bench_member(user))
        self.interactions[prompt] = state
        return state

    def ack_seconds(self, interaction: InteractionState) -> float | None:
        """From dispatching INTERACTION_CREATE to the callback reaching the fake; None if none came."""
        arrived = self.discord.callback_times.get(interaction.token)
        return None if arrived is None else arrived - interaction.created

    def fake_job_for(self, tag: str) -> FakeJob | None:
        """The fake RunComfy job whose prompt text contains `tag`."""
        return next((j for j in self.runcomfy.jobs.values() if tag in j.input.get("text", "")), None)

    def poll_calls(self, kinds: tuple[str, ...] = ("status", "result")) -> dict[str, list[float]]:
        """Arrival times of the polls (status and result requests) at the fake RunComfy, by request id."""
        calls: dict[str, list[float]] = {}
        for request in self.runcomfy.requests:
            parts = request.path.split("/")
            if request.site == "api" and len(parts) == 5 and parts[4] in kinds:
                calls.setdefault(parts[3], []).append(request.time)
        return calls


def start_time(fake_job: FakeJob) -> float:
    """When a timed fake RunComfy job moves to in_progress by its plan."""
    return fake_job.submitted_at + fake_job.plan.queue_seconds


def finish_time(fake_job: FakeJob) -> float:
    """When a timed fake RunComfy job finishes by its plan (queue + run after submission), asked or not."""
    return fake_job.submitted_at + fake_job.plan.queue_seconds + fake_job.plan.run_seconds


def bot_environment(discord_fake: FakeDiscord, runcomfy: FakeRunComfy, folder: Path, **settings: str) -> dict[str, str]:
    """The environment of the bot process: production settings pointed at the fakes, plus `settings`."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("BENCH_EXTRA_PYTHONPATH")))),
        PYTHONUNBUFFERED="1",
        DISCORD_TOKEN=discord_fake.token,
        DISCORD_API_BASE_URL=discord_fake.api_url,
        RUNCOMFY_API_TOKEN=runcomfy.token,
        RUNCOMFY_BASE_URL=runcomfy.base_url,
        DATABASE_PATH=str(folder / "seedream.db"),
        HEARTBEAT_PATH=str(folder / "heartbeat"),
        LOG_LEVEL="INFO",
        **GENEROUS_QUOTA,
    )
    env.update(settings)
    return env


@contextlib.asynccontextmanager
async def bench_world(
    *,
    plan: JobPlan | None = None,
    premium_tier: int = 0,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[World]:
    """Start both fakes, then the bot process against them; tear all down (bot first) at the end."""
    discord_fake = TimedFakeDiscord(premium_tier=premium_tier)
    runcomfy = FakeRunComfy(token="bench-runcomfy-token", plan=plan)
    with tempfile.TemporaryDirectory(prefix="seedream-bench-") as tmp:
        folder = Path(tmp)
        await discord_fake.start()
        await runcomfy.start()
        bot = BotProcess(folder, bot_environment(discord_fake, runcomfy, folder, **(settings or {})))
        try:
            await bot.start(discord_fake)
            yield World(discord_fake, runcomfy, bot, folder)
        finally:
            await bot.stop()
            await runcomfy.stop()
            await discord_fake.close()


async def wait_until(check: Callable[[], Any], timeout: float, *, interval: float = 0.01, what: str = "") -> Any:  # noqa: ASYNC109
    """Poll `check` until it returns something truthy; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what or 'a condition'}")
        await asyncio.sleep(interval)


async def dispatch_paced(
    world: World, prompts: Sequence[tuple[str, int]], *, per_second: float, first_user: int = 0
) -> list[InteractionState]:
    """Dispatch `/imagine` for each (prompt, images) at a steady rate, each from its own member."""
    started = time.monotonic()
    interactions = []
    for number, (prompt, images) in enumerate(prompts):
        delay = started + number / per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        interactions.append(await world.imagine(prompt, images=images, user=first_user + number))
    return interactions


def read_job_states(database: Path) -> dict[str, int]:
    """Blocking: how many jobs the bot's database holds in each state (read after the bot stopped)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
