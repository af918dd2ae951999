"""`seedream-bot generate` prints the price first, asks on a terminal, and prints the cost at the end."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys

from tests.unit.cli.test_generate import REPO, cli_env, run_cli


async def test_price_before_and_cost_after_without_a_question_when_not_a_terminal(fake_runcomfy, tmp_path):
    fake_runcomfy.cost_per_image = 0.029
    fake_runcomfy.next_job(images=2)
    code, _out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--images", "3", "--out", "set")
    assert code == 0, err
    assert "Price: up to $0.09 for 3 image(s) ($0.03 each, quoted by RunComfy)." in err
    assert "Cost: $0.058 (billed by RunComfy)." in err
    assert "[y/N]" not in err
    assert err.index("Price:") < err.index("Submitting")


async def test_the_setting_is_used_and_named_when_runcomfy_quotes_no_price(fake_runcomfy, tmp_path):
    fake_runcomfy.model_info = {**fake_runcomfy.model_info, "price_unit": "second"}
    fake_runcomfy.next_job(cost=None)
    code, _out, err = await run_cli(
        fake_runcomfy, tmp_path, "a lighthouse", "--images", "2", "--out", "set", PRICE_PER_IMAGE_USD="0.05"
    )
    assert code == 0, err
    assert "Price: up to $0.10 for 2 image(s) ($0.05 each, PRICE_PER_IMAGE_USD; RunComfy quotes no usable" in err
    assert "Cost: about $0.10 (estimated: RunComfy gave no cost; 2 image(s))." in err


async def test_out_of_credit_stops_before_submitting(fake_runcomfy, tmp_path):
    fake_runcomfy.out_of_credit = True
    code, _out, err = await run_cli(fake_runcomfy, tmp_path, "a lighthouse", "--out", "set")
    assert code == 4 and "out of credit" in err and "Nothing was sent" in err
    assert fake_runcomfy.submits == []


def run_on_terminal(fake, tmp_path, answer: bytes, *args: str) -> tuple[int, str]:
    """`generate` with a pseudo-terminal as standard input, typing `answer` once asked."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "generate", "a lighthouse", "--images", "2", "--out", "set", *args],
            cwd=tmp_path, env={**cli_env(fake, tmp_path), "PYTHONPATH": str(REPO)}, stdin=follower,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.write(leader, answer)  # waits in the terminal's buffer until the question reads it
        _out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    return process.returncode, err.decode()


async def test_a_terminal_is_asked_and_no_sends_nothing(fake_runcomfy, tmp_path):
    code, err = await asyncio.to_thread(run_on_terminal, fake_runcomfy, tmp_path, b"n\n")
    assert code == 1 and "Submit this paid job? [y/N] " in err and "Nothing was sent to RunComfy." in err
    assert fake_runcomfy.submits == []


async def test_a_terminal_answering_yes_submits(fake_runcomfy, tmp_path):
    code, err = await asyncio.to_thread(run_on_terminal, fake_runcomfy, tmp_path, b"y\n")
    assert code == 0, err
    assert len(fake_runcomfy.submits) == 1


async def test_yes_skips_the_question_on_a_terminal(fake_runcomfy, tmp_path):
    code, err = await asyncio.to_thread(run_on_terminal, fake_runcomfy, tmp_path, b"", "--yes")
    assert code == 0, err
    assert len(fake_runcomfy.submits) == 1
