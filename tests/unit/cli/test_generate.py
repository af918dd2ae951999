"""`seedream-bot generate` end to end: a real `python -m bot generate` process against the fake RunComfy."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main as bot_main
from bot.cli import generate as cli_generate
from bot.cli import job as cli_job
from bot.domain.seedream import build_request
from bot.runcomfy.client import JobStatus, RemoteState
from tests.fakes.runcomfy import make_png
from tests.secrets_helpers import DISCORD_TOKEN, leaked_pieces, planted_text

REPO = Path(__file__).resolve().parents[3]


def cli_env(fake, tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "RUNCOMFY_API_TOKEN": fake.token,
        "RUNCOMFY_BASE_URL": fake.base_url,
        "POLL_INTERVAL_SECONDS": "0.05",
        "POLL_MAX_INTERVAL_SECONDS": "0.1",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


async def start_cli(
    fake, tmp_path: Path, *args: str, command: str = "generate", **env: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        command,
        *args,
        cwd=tmp_path,
        env=cli_env(fake, tmp_path, **env),
        stdin=asyncio.subprocess.DEVNULL,  # not a terminal: no price confirmation is asked
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(fake, tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await start_cli(fake, tmp_path, *args, **env)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """stderr lines up to and including the first one containing `text`."""
    seen = ""
    while text not in seen:
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line, f"the command ended before saying {text!r}: {seen}"
        seen += line.decode()
    return seen


def assert_clean(err: str, token: str) -> None:
    assert "Traceback" not in err
    assert token not in err


async def test_generates_downloads_and_prints_the_paths(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(queue_seconds=0.3, queue_position=3, run_seconds=0.2, image_bytes=5000)

    options = ["--images", "3", "--aspect", "16:9", "--seed", "7", "--mode", "standard", "--out", "set"]
    code, out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", *options)

    assert code == 0, err
    [rid] = fake_runcomfy.jobs
    paths = out.splitlines()
    assert paths == [f"set/seedream_{rid}_0{i}.png" for i in (1, 2, 3)]  # named like the images on Discord
    for i, path in enumerate(paths, 1):
        assert (tmp_path / path).read_bytes() == make_png(5000, i)
    assert fake_runcomfy.submits[0].json == {
        "text": "Generate 3 images: a lighthouse",
        "sequential_image_generation_options": 3,
        "image_size": "2560:1440 (16:9)",
        "optimize_prompt_options": "standard",
        "sequential_image_generation": "auto",
        "seed": 7,
    }
    assert "Queued at RunComfy, position 3" in err and "Generating 3 images" in err and "Done in" in err
    assert "\r" not in err  # plain lines when stderr is not a terminal
    assert_clean(err + out, fake_runcomfy.token)
    assert all("Authorization" not in r.headers for r in fake_runcomfy.requests if r.site == "output")


async def test_polls_like_the_bot_result_while_running_and_sees_the_end_quickly(fake_runcomfy, tmp_path):
    # One image is expected to take about 2 s; this one starts after 0.3 s at position 1 and takes 2.8 s.
    fake_runcomfy.next_job(queue_seconds=0.3, queue_position=1, run_seconds=2.8, image_bytes=5000)

    env = {"POLL_INTERVAL_SECONDS": "2", "POLL_MAX_INTERVAL_SECONDS": "10"}
    code, _out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--images", "1", **env)

    assert code == 0, err
    [(rid, job)] = fake_runcomfy.jobs.items()
    finished = job.submitted_at + 0.3 + 2.8
    polls = [r for r in fake_runcomfy.requests_for(f"/v1/requests/{rid}/", site="api")]
    # Pauses growing from POLL_INTERVAL_SECONDS (0, 2, 5 s) would see it 1.9 s late.
    assert min(r.time for r in polls if r.time >= finished) - finished < 1.0
    kinds = [r.path.rsplit("/", 1)[1] for r in polls]
    first_result = kinds.index("result")
    assert set(kinds[:first_result]) == {"status"} and set(kinds[first_result:]) == {"result"}
    assert sum(r.path.endswith("/result") and r.time >= finished for r in polls) == 1


async def test_bad_input_exits_2_without_calling_runcomfy(fake_runcomfy, tmp_path):
    code, out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--images", "16")

    assert (code, out) == (2, "")
    assert err.strip().count("\n") == 0 and "between 1 and 15" in err
    assert_clean(err, fake_runcomfy.token)
    assert fake_runcomfy.requests == []


async def test_wrong_token_exits_3_without_showing_it(fake_runcomfy, tmp_path):
    wrong = "sk-wrong-token-0123456789"

    code, out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", RUNCOMFY_API_TOKEN=wrong)

    assert (code, out) == (3, "")
    assert "RUNCOMFY_API_TOKEN" in err
    assert_clean(err, wrong)
    assert fake_runcomfy.jobs == {}


async def test_failed_job_exits_4_with_its_reason(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(failure="the prompt was refused by the content filter")

    code, out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--out", "x")

    assert (code, out) == (4, "")
    assert "refused by the content filter" in err
    assert_clean(err, fake_runcomfy.token)
    assert not any((tmp_path / "x").iterdir())


async def test_ctrl_c_while_queued_cancels_the_job(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(manual=True, queue_position=5)
    process = await start_cli(fake_runcomfy, tmp_path, "a lighthouse", "--out", "x")
    await read_until(process, "Queued at RunComfy, position 5")

    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130
    [rid] = fake_runcomfy.jobs
    assert fake_runcomfy.state_of(rid) == "cancelled"
    assert len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/cancel")) == 1
    assert "cancelled at RunComfy" in err.decode()
    assert out == b"" and "Traceback" not in err.decode()


async def test_ctrl_c_while_generating_keeps_waiting_for_the_paid_images(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(manual=True, image_bytes=3000)
    process = await start_cli(fake_runcomfy, tmp_path, "a lighthouse", "--out", "x")
    await read_until(process, "Queued at RunComfy")
    [rid] = fake_runcomfy.jobs
    await fake_runcomfy.start(rid)
    await read_until(process, "Generating 3 images")

    process.send_signal(signal.SIGINT)
    said = await read_until(process, "seedream-bot fetch")
    assert "already generating and cannot be cancelled" in said and "press Ctrl-C again to quit" in said
    assert f"seedream-bot fetch {rid} --out x" in said
    fake_runcomfy.complete(rid)
    out, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [f"x/seedream_{rid}_0{i}.png" for i in (1, 2, 3)]
    assert "Traceback" not in err.decode()


async def test_a_second_ctrl_c_quits_and_fetch_collects_the_images_later(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(manual=True, image_bytes=3000)
    process = await start_cli(fake_runcomfy, tmp_path, "a lighthouse", "--images", "2", "--out", "x")
    await read_until(process, "Queued at RunComfy")
    [rid] = fake_runcomfy.jobs
    await fake_runcomfy.start(rid)
    await read_until(process, "Generating 2 images")
    process.send_signal(signal.SIGINT)
    await read_until(process, "seedream-bot fetch")

    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130 and out == b""
    assert f"seedream-bot fetch {rid} --out x" in err.decode() and "Traceback" not in err.decode()
    assert fake_runcomfy.state_of(rid) == "in_progress"

    fetching = await start_cli(fake_runcomfy, tmp_path, rid, "--out", "later", command="fetch")
    await read_until(fetching, "Generating images")  # still running: fetch waits for it
    fake_runcomfy.complete(rid)
    out, err = await asyncio.wait_for(fetching.communicate(), 30)

    assert fetching.returncode == 0, err.decode()
    assert out.decode().splitlines() == [f"later/seedream_{rid}_01.png", f"later/seedream_{rid}_02.png"]
    assert (tmp_path / "later" / f"seedream_{rid}_02.png").read_bytes() == make_png(3000, 2)
    assert len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/cancel")) == 1  # generate's first Ctrl-C asked
    assert len(fake_runcomfy.submits) == 1  # fetch costs nothing


# -- in-process runs, for the finer cases ---------------------------------------------------------------------------


@pytest.fixture
def in_process(fake_runcomfy, tmp_path, monkeypatch):
    """Runs `main([...])` in a worker thread (it has its own event loop), with the environment of the fake."""
    monkeypatch.chdir(tmp_path)
    for name, value in cli_env(fake_runcomfy, tmp_path).items():
        monkeypatch.setenv(name, value)

    async def run(*args: str) -> int:
        return await asyncio.to_thread(bot_main, ["generate", *args])

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield run
    for handler in set(root.handlers) - set(handlers):  # the command set up logging for its process
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x" * 601], "limit is 600"),
        (["a fox", "--aspect", "5:4"], "Unknown aspect ratio"),
        (["a fox", "--mode", "turbo"], "fast or standard"),
        (["a fox", "--seed", "-3"], "seed"),
        (["5 images of a fox", "--images", "2"], "Make them match"),
    ],
)
async def test_each_bad_option_exits_2(fake_runcomfy, in_process, capfd, args, message):
    assert await in_process(*args) == 2
    err = capfd.readouterr().err
    assert message in err and "Traceback" not in err
    assert fake_runcomfy.requests == []


async def test_missing_token_exits_2(fake_runcomfy, in_process, monkeypatch, capfd):
    monkeypatch.delenv("RUNCOMFY_API_TOKEN")
    assert await in_process("a fox") == 2
    assert "RUNCOMFY_API_TOKEN is not set" in capfd.readouterr().err


async def test_fewer_images_than_asked_are_all_saved(fake_runcomfy, in_process, tmp_path, capfd):
    fake_runcomfy.next_job(images=2)
    assert await in_process("a fox", "--images", "4", "--out", "o") == 0
    captured = capfd.readouterr()
    assert len(captured.out.splitlines()) == 2 and len(list((tmp_path / "o").iterdir())) == 2
    assert "2 of the 4 asked" in captured.err


@pytest.mark.parametrize(
    ("route", "status", "expected"),
    [("submit", 402, "out of credit"), ("submit", 503, "unclear whether the job started"), ("status", 404, "expired")],
)
async def test_runcomfy_failures_exit_4(fake_runcomfy, in_process, capfd, route, status, expected):
    fake_runcomfy.fail_next(route, status, times=10)
    assert await in_process("a fox") == 4
    err = capfd.readouterr().err
    assert expected in err and "Traceback" not in err and fake_runcomfy.token not in err


async def test_expired_images_exit_4(fake_runcomfy, in_process, capfd):
    fake_runcomfy.fail_next("download", 404, times=10)
    assert await in_process("a fox", "--images", "1") == 4
    assert "could not be saved" in capfd.readouterr().err


# -- the progress line ----------------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal():
    stream = FakeTerminal()
    progress = cli_job.Progress(stream)
    progress.show("Queued at RunComfy, position 2 (1s)", "a")
    progress.show("Queued at RunComfy, position 2 (2s)", "a")
    progress.end_line()
    assert stream.getvalue() == (
        "\rQueued at RunComfy, position 2 (1s)\x1b[K\rQueued at RunComfy, position 2 (2s)\x1b[K\n"
    )


def test_progress_prints_plain_lines_only_on_change_elsewhere():
    stream = io.StringIO()
    progress = cli_job.Progress(stream)
    for text, key in [("queued (1s)", 1), ("queued (2s)", 1), ("running (3s)", 2)]:
        progress.show(text, key)
    progress.end_line()
    assert stream.getvalue() == "queued (1s)\nrunning (3s)\n"


@pytest.mark.parametrize(
    ("state", "position", "elapsed", "line"),
    [
        (RemoteState.QUEUED, 4, 3.2, "Queued at RunComfy, position 4 (3s)"),
        (RemoteState.QUEUED, None, 65, "Queued at RunComfy (1m05s)"),
        (RemoteState.RUNNING, None, 12, "Generating 5 images (12s)"),
        (RemoteState.UNKNOWN, None, 1, "Waiting (RunComfy says 'warming') (1s)"),
    ],
)
def test_describe(state, position, elapsed, line):
    status = JobStatus("rid", state, position, "warming" if state is RemoteState.UNKNOWN else state.value)
    assert cli_generate.describe(status, 5, elapsed) == line


async def test_saves_only_real_images_only_as_many_as_asked_named_by_format(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(extra_urls=10, image_bytes=3000)
    fake_runcomfy.output_bodies[2] = b"<!doctype html><p>not an image</p>"
    jpeg = io.BytesIO()
    Image.new("RGB", (20, 20)).save(jpeg, "JPEG")
    fake_runcomfy.output_bodies[3] = jpeg.getvalue()

    code, out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--images", "3", "--out", "set")

    assert code == cli_job.EXIT_API, err
    [rid] = fake_runcomfy.jobs
    assert out.splitlines() == [f"set/seedream_{rid}_01.png", f"set/seedream_{rid}_03.jpg"]
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [f"seedream_{rid}_01.png", f"seedream_{rid}_03.jpg"]
    assert "image 2 is not a PNG, JPEG or WebP image" in err
    assert len([r for r in fake_runcomfy.requests if r.site == "output"]) == 3


@pytest.mark.parametrize("failure", [True, False])
async def test_tokens_echoed_by_runcomfy_never_reach_the_terminal(fake_runcomfy, tmp_path, failure):
    tokens = (fake_runcomfy.token, DISCORD_TOKEN)
    planted = planted_text(*tokens)
    fake_runcomfy.planted = planted
    fake_runcomfy.spellings = {"in_progress": "busy " + planted}
    fake_runcomfy.fail_next("download", 404, {"error_message": planted})
    fake_runcomfy.output_bodies[2] = planted.encode()
    fake_runcomfy.next_job(run_seconds=0.2, failure=planted if failure else None)

    code, out, err = await run_cli(
        fake_runcomfy, tmp_path, "a lighthouse", "--images", "3", DISCORD_TOKEN=DISCORD_TOKEN, LOG_LEVEL="DEBUG"
    )

    assert code == cli_job.EXIT_API
    assert "bad credentials" in err if failure else "busy bad credentials" in err
    assert leaked_pieces(out + err, *tokens) == [], err
    assert len(out.splitlines()) == (0 if failure else 1)


# -- ticking, help, version, fetch's input ----------------------------------------------------------------------------


async def test_the_elapsed_time_ticks_between_polls(fake_runcomfy, in_process, monkeypatch):
    fake_runcomfy.next_job(queue_seconds=2.5, queue_position=2, image_bytes=2000)
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "2")
    monkeypatch.setenv("POLL_MAX_INTERVAL_SECONDS", "10")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    assert await in_process("a fox", "--images", "1") == 0

    [rid] = fake_runcomfy.jobs
    polls = len(fake_runcomfy.requests_for(f"/v1/requests/{rid}/", site="api"))
    shown = [line for line in terminal.getvalue().split("\r") if line.startswith("Queued at RunComfy, position 2")]
    assert len(shown) > polls  # the line was redrawn between polls, so its elapsed time moved on
    assert "(1s)" in " ".join(shown) and "(2s)" in " ".join(shown)


def test_every_command_has_a_description_and_generate_states_defaults_cost_and_exit_codes(capsys):
    helps = {}
    for command in ("run", "generate", "fetch", "check", "health"):
        with pytest.raises(SystemExit) as done:
            bot_main([command, "--help"])
        assert done.value.code == 0
        helps[command] = capsys.readouterr().out
        description = helps[command].split("\n\n")[1]  # after the usage lines
        assert not description.startswith(("positional arguments", "options")), command
    for words in ("default: 16:9", "default: fast", "else 3", "paid job", "exit codes", "130", "seedream-bot fetch"):
        assert words in helps["generate"], words


def test_version_prints_the_version(capsys):
    with pytest.raises(SystemExit) as done:
        bot_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "seedream-bot 0.1.0"


async def test_out_pointing_at_a_file_says_it_is_a_file(fake_runcomfy, in_process, tmp_path, capfd):
    (tmp_path / "notes.txt").write_text("mine")
    assert await in_process("a fox", "--out", "notes.txt") == 2
    err = capfd.readouterr().err
    assert "--out notes.txt is a file, not a folder" in err and "Traceback" not in err
    assert fake_runcomfy.requests == []


async def test_fetch_refuses_a_malformed_request_id(fake_runcomfy, tmp_path):
    process = await start_cli(fake_runcomfy, tmp_path, "../../etc", command="fetch")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2 and out == b""
    assert "not a RunComfy request id" in err.decode() and fake_runcomfy.requests == []


async def test_fetch_of_a_failed_job_exits_4(fake_runcomfy, tmp_path):
    fake_runcomfy.next_job(failure="the prompt was refused by the content filter")
    code, _out, _err = await run_cli(fake_runcomfy, tmp_path, "a fox", "--out", "x")
    assert code == 4
    [rid] = fake_runcomfy.jobs

    process = await start_cli(fake_runcomfy, tmp_path, rid, "--out", "y", command="fetch")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 4 and out == b"" and "refused by the content filter" in err.decode()


@pytest.mark.parametrize("command", ["generate", "fetch"])
async def test_a_dripping_image_is_given_up_after_download_timeout_seconds(fake_runcomfy, tmp_path, command):
    if command == "fetch":
        code, _out, err = await run_cli(fake_runcomfy, tmp_path, "a fox", "--images", "2", "--out", "first")
        assert code == 0, err
        [rid] = fake_runcomfy.jobs
        args = (rid, "--out", "again")
    else:
        args = ("a fox", "--images", "2", "--out", "again")
    fake_runcomfy.drip[2] = 0.05  # about 2 KB at 20 bytes a second

    started = asyncio.get_running_loop().time()
    process = await start_cli(fake_runcomfy, tmp_path, *args, command=command, DOWNLOAD_TIMEOUT_SECONDS="1")
    out, err = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == cli_job.EXIT_API
    assert asyncio.get_running_loop().time() - started < 15
    assert len(out.decode().splitlines()) == 1 and "did not finish within 1 s" in err.decode()


async def test_a_second_ctrl_c_during_a_pause_stops_the_command():
    """The second Ctrl-C must not be swallowed by the pause's own wait for the first one."""

    async def follow() -> None:
        interrupts = cli_job.Interrupts(cli_job.Progress(io.StringIO()))
        interrupts._on_sigint()  # the first Ctrl-C, dealt with by the job loop
        interrupts.event.clear()
        asyncio.get_running_loop().call_later(0.05, interrupts._on_sigint)
        try:
            for _ in range(3):  # the loop goes on pausing until told to stop
                await asyncio.wait_for(interrupts.event.wait(), 1)
                interrupts.event.clear()
        finally:
            interrupts.close()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(follow())


async def test_fetch_of_a_job_cancelled_elsewhere_says_so_and_exits_4(fake_runcomfy, runcomfy_client, tmp_path):
    fake_runcomfy.next_job(manual=True)
    rid = (await runcomfy_client.submit(build_request("a fox", 2))).request_id
    await runcomfy_client.cancel(rid)  # still queued: cancelled

    process = await start_cli(fake_runcomfy, tmp_path, rid, "--out", "y", command="fetch")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 4 and out == b"" and f"Job {rid} was cancelled at RunComfy." in err.decode()
