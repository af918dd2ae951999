"""The real bot as a subprocess: a stop signal shuts it down within 10 s, and its jobs resume at the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from bot.domain.job_state import JobState
from bot.store.database import Storage
from tests.imagine_helpers import eventually

REPO = Path(__file__).resolve().parents[3]


class BotProcess:
    REPO = REPO
    running: ClassVar[set[BotProcess]] = set()  # killed after each test, so a failing test leaves no bot behind

    def __init__(self, fake_discord, fake_runcomfy, folder: Path) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "DISCORD_TOKEN": fake_discord.token,
            "RUNCOMFY_API_TOKEN": fake_runcomfy.token,
            "RUNCOMFY_BASE_URL": fake_runcomfy.base_url,
            "DISCORD_API_BASE_URL": fake_discord.api_url,
            "DATABASE_PATH": str(folder / "seedream.db"),
            "HEARTBEAT_PATH": str(folder / "heartbeat"),
            "POLL_INTERVAL_SECONDS": "0.1",
            "POLL_MAX_INTERVAL_SECONDS": "0.3",
            "STATUS_EDIT_INTERVAL_SECONDS": "0.1",
        }
        self.folder = folder
        self.fake_discord = fake_discord
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        identified = len(self.fake_discord.gateway.identifies)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=self.folder, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        BotProcess.running.add(self)
        await eventually(lambda: len(self.fake_discord.gateway.identifies) > identified, timeout=20)
        # READY comes after the guilds arrive; the heartbeat is written once the bot is ready.
        await eventually(lambda: (self.folder / "heartbeat").exists(), timeout=20)

    async def stop(self, sig: int) -> tuple[int, float, str]:
        started = time.monotonic()
        self.process.send_signal(sig)
        _out, err = await asyncio.wait_for(self.process.communicate(), 20)
        return self.process.returncode, time.monotonic() - started, err.decode()


@pytest.fixture(autouse=True)
async def no_bot_left_running():
    yield
    for bot in list(BotProcess.running):
        if bot.process is not None and bot.process.returncode is None:
            bot.process.kill()
            await bot.process.communicate()
    BotProcess.running.clear()


async def read_job(folder: Path, world):
    storage = await Storage.open(folder / "seedream.db")
    try:
        (job,) = await storage.recent_jobs(world.guild_id, int(world.member["user"]["id"]))
        return job
    finally:
        await storage.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
async def test_stop_signal_then_restart_delivers_once(fake_discord, fake_runcomfy, tmp_path, stop_signal):
    world = fake_discord.world
    fake_runcomfy.next_job(manual=True, images=2)
    first = BotProcess(fake_discord, fake_runcomfy, tmp_path)
    await first.start()
    await fake_discord.run_command("imagine", {"prompt": "a lighthouse", "images": 2})
    await eventually(lambda: fake_runcomfy.submits, timeout=10)
    rid = next(iter(fake_runcomfy.jobs))
    await eventually(lambda: fake_discord.find_requests("PATCH", r"/webhooks/.*/messages/"), timeout=10)

    async def request_id_stored():
        return (await read_job(tmp_path, world)).request_id

    # Between RunComfy accepting the job and the database storing its id lies a moment no design can close:
    # a kill there loses the id, and the restart reports the job as failed and refunded instead.
    await eventually(request_id_stored, timeout=10)

    code, seconds, stderr = await first.stop(stop_signal)
    if stop_signal == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 0, stderr
        assert seconds < 10
        assert "Traceback" not in stderr
    assert fake_discord.token not in stderr and fake_runcomfy.token not in stderr

    job = await read_job(tmp_path, world)
    assert job.request_id == rid and not job.state.terminal and not job.settled

    fake_runcomfy.complete(rid)
    second = BotProcess(fake_discord, fake_runcomfy, tmp_path)
    await second.start()

    async def delivered():
        job = await read_job(tmp_path, world)
        return job.state is JobState.DELIVERED and job

    job = await eventually(delivered, timeout=15)
    code, seconds, stderr = await second.stop(signal.SIGTERM)
    assert code == 0 and seconds < 10, stderr
    assert len(fake_runcomfy.submits) == 1
    assert (job.images_delivered, job.images_charged) == (2, 2)
    image_posts = [r for r in fake_discord.requests if r.method == "POST" and r.files]
    assert sum(len(r.files) for r in image_posts) == 2
