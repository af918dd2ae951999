"""One bot process per database: a second bot refuses to start in one line (exit 2) and the first runs on; a
crashed holder does not block the next start; `check` and `health` work beside the running bot."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

from bot.store.lock import DatabaseLock, DatabaseLocked, lock_path
from tests.imagine_helpers import eventually
from tests.unit.discord.test_shutdown import BotProcess, no_bot_left_running, read_job

__all__ = ["no_bot_left_running"]  # the fixture, used here too

HOLD_AND_WAIT = "import sys, time; from bot.store.lock import DatabaseLock; DatabaseLock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)"  # noqa: E501


def test_the_second_holder_is_refused_with_pid_host_and_time_until_the_first_releases(tmp_path):
    database = tmp_path / "seedream.db"
    first = DatabaseLock.acquire(database)
    try:
        try:
            DatabaseLock.acquire(database)
        except DatabaseLocked as exc:
            message = str(exc)
        else:
            raise AssertionError("the second lock was granted")
        assert str(database) in message and f"pid {os.getpid()}" in message
        assert f"on host {socket.gethostname()}" in message and " UTC" in message and "\n" not in message
    finally:
        first.release()
    DatabaseLock.acquire(database).release()
    assert lock_path(database).exists()


async def test_a_killed_holder_does_not_block_the_next_start(tmp_path):
    database = tmp_path / "seedream.db"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_AND_WAIT, str(database), stdout=asyncio.subprocess.PIPE,
        env={"PYTHONPATH": str(BotProcess.REPO)},
    )  # fmt: skip
    assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"held\n"
    try:
        DatabaseLock.acquire(database)
        raise AssertionError("the lock of a living holder was granted")
    except DatabaseLocked as exc:
        assert f"pid {holder.pid}" in str(exc)
    holder.send_signal(signal.SIGKILL)
    await holder.wait()

    lock = DatabaseLock.acquire(database)  # the pid and time it left behind do not matter
    lock.release()


async def run_cli(process: BotProcess, *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=process.folder, env=process.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 30)
    return child.returncode, out.decode(), err.decode()


async def test_a_second_bot_on_the_same_database_refuses_to_start_and_the_first_runs_on(
    fake_discord, fake_runcomfy, tmp_path
):
    world = fake_discord.world
    first = BotProcess(fake_discord, fake_runcomfy, tmp_path)
    await first.start()
    fake_runcomfy.next_job(manual=True, images=2)
    await fake_discord.run_command("imagine", {"prompt": "a lighthouse", "images": 2})
    await eventually(lambda: fake_runcomfy.submits, timeout=10)
    identified = len(fake_discord.gateway.identifies)

    code, out, err = await run_cli(first, "run")

    assert code == 2, err
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "seedream.db") in err and f"pid {first.process.pid}" in err and "since " in err
    assert len(fake_discord.gateway.identifies) == identified  # it never logged in
    assert (await run_cli(first, "health"))[0] == 0
    code, out, _err = await run_cli(first, "check")
    assert code == 0, out

    assert first.process.returncode is None
    fake_runcomfy.complete(next(iter(fake_runcomfy.jobs)))

    async def delivered():
        job = await read_job(tmp_path, world)
        return job.state.value == "delivered" and job

    job = await eventually(delivered, timeout=15)  # the first bot still follows its job
    assert job.images_delivered == 2 and len(fake_runcomfy.submits) == 1
    code, _seconds, stderr = await first.stop(signal.SIGTERM)
    assert code == 0, stderr
