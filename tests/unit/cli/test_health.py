import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli.health import Heartbeat, heartbeat_problem, read_heartbeat_time, write_heartbeat

REPO = Path(__file__).resolve().parents[3]
SETTINGS_PREFIXES = ("DISCORD_", "RUNCOMFY_", "DATABASE_", "HEARTBEAT_", "LOG_", "QUOTA_", "POLL_", "JOB_", "DOWNLOAD_")


def run_health(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    clean["PYTHONPATH"] = str(REPO)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", "health", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_write_heartbeat_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "heartbeat"
    write_heartbeat(path, {"time": 123.5, "guilds": 2})
    write_heartbeat(path, {"time": 124.5, "guilds": 3})
    assert json.loads(path.read_text()) == {"time": 124.5, "guilds": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat"]


def test_read_heartbeat_accepts_bare_number_and_rejects_garbage(tmp_path):
    path = tmp_path / "heartbeat"
    path.write_text("1700000000.5\n")
    assert read_heartbeat_time(path) == 1700000000.5
    for bad in ("", "hello", '{"guilds": 1}', '{"time": "soon"}', "true"):
        path.write_text(bad)
        with pytest.raises(ValueError):
            read_heartbeat_time(path)


def test_heartbeat_problem_lines(tmp_path):
    path = tmp_path / "heartbeat"
    assert "missing" in heartbeat_problem(path, 90, now=1000.0)
    write_heartbeat(path, {"time": 1000.0})
    assert heartbeat_problem(path, 90, now=1050.0) is None
    assert heartbeat_problem(path, 90, now=990.0) is None  # a clock a little behind is not "stale"
    assert heartbeat_problem(path, 90, now=1200.0) == "unhealthy: heartbeat stale since 200 s (limit 90 s)"
    path.write_text("garbage")
    assert "not a heartbeat" in heartbeat_problem(path, 90, now=1000.0)


async def test_heartbeat_writes_repeatedly_with_status_and_stops(tmp_path):
    path = tmp_path / "heartbeat"
    calls = 0

    def status():
        nonlocal calls
        calls += 1
        return {"guilds": 4, "jobs_in_flight": calls}

    heartbeat = Heartbeat(path, interval=0.02, status=status)
    before = time.time()
    heartbeat.start()
    heartbeat.start()  # second start is a no-op
    for _ in range(200):
        await asyncio.sleep(0.01)
        if calls >= 4:
            break
    await heartbeat.stop()
    assert not heartbeat.running
    data = json.loads(path.read_text())
    assert data["guilds"] == 4 and data["jobs_in_flight"] >= 3
    assert before <= data["time"] <= time.time()
    stopped_at = path.read_text()
    await asyncio.sleep(0.06)
    assert path.read_text() == stopped_at
    await heartbeat.stop()  # stopping twice is harmless


async def test_heartbeat_survives_unwritable_path_and_logs_once(tmp_path, caplog):
    path = tmp_path / "no-such-folder" / "heartbeat"
    heartbeat = Heartbeat(path, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="bot.cli.health"):
        heartbeat.start()
        await asyncio.sleep(0.08)
        assert heartbeat.running
        path.parent.mkdir()
        await asyncio.sleep(0.05)
        await heartbeat.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write heartbeat" in warnings[0].getMessage()
    assert read_heartbeat_time(path) > 0


async def test_heartbeat_with_failing_status_still_writes_time(tmp_path):
    path = tmp_path / "heartbeat"
    heartbeat = Heartbeat(path, interval=10, status=lambda: 1 / 0)
    await heartbeat.beat()
    assert list(json.loads(path.read_text())) == ["time"]


async def test_heartbeat_is_not_written_while_disconnected(tmp_path):
    path = tmp_path / "heartbeat"
    connected = False
    heartbeat = Heartbeat(path, interval=10, alive=lambda: connected)
    await heartbeat.beat()
    assert not path.exists()
    connected = True
    await heartbeat.beat()
    assert read_heartbeat_time(path) is not None


def test_interval_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        Heartbeat(tmp_path / "h", interval=0)


def test_health_command_fresh_heartbeat_exits_0(tmp_path):
    path = tmp_path / "heartbeat"
    write_heartbeat(path, {"time": time.time()})
    result = run_health(tmp_path, HEARTBEAT_PATH=str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_health_command_stale_heartbeat_exits_1(tmp_path):
    path = tmp_path / "heartbeat"
    write_heartbeat(path, {"time": time.time() - 200})
    result = run_health(tmp_path, HEARTBEAT_PATH=str(path))
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: heartbeat stale since 20")
    assert result.stdout.count("\n") == 1
    assert run_health(tmp_path, "--max-age", "300", HEARTBEAT_PATH=str(path)).returncode == 0


def test_health_command_missing_heartbeat_exits_1(tmp_path):
    result = run_health(tmp_path, HEARTBEAT_PATH=str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "missing" in result.stdout
    assert not (tmp_path / "data").exists()  # health never creates folders


def test_health_command_reads_dotenv_and_never_exits_2(tmp_path):
    path = tmp_path / "beat"
    write_heartbeat(path, {"time": time.time()})
    (tmp_path / ".env").write_text(f"HEARTBEAT_PATH={path}\n")
    assert run_health(tmp_path).returncode == 0
    broken = run_health(tmp_path, LOG_LEVEL="loud")
    assert broken.returncode == 1  # Docker reserves exit code 2
    assert "LOG_LEVEL" in broken.stdout
