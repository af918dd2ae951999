"""The layers' import contract, enforced by ruff (TID251): it fails on the imports it forbids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ruff_refuses(path: str, source: str) -> bool:
    """Whether `ruff check` reports a banned import in `source` placed at `path` of the project."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 1 and "TID251" in done.stdout


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("bot/engine/tracker.py", "import discord\n"),
        ("bot/store/database.py", "from discord.ext import commands\n"),
        ("bot/domain/seedream.py", "import discord.ui\n"),
        ("bot/cli/generate.py", "from discord import Embed\n"),
        ("bot/settings.py", "import discord\n"),
        ("bot/runcomfy/client.py", "from bot.domain import seedream\n"),
        ("bot/runcomfy/client.py", "from bot.logging_setup import for_job\n"),
        ("bot/runcomfy/download.py", "import bot.engine.jobs\n"),
        ("bot/runcomfy/errors.py", "from bot import settings\n"),
        ("bot/runcomfy/price.py", "from bot.store.database import Storage\n"),
        ("bot/runcomfy/transport.py", "import discord\n"),
        ("bot/engine/quotas.py", "from bot.discord import texts\n"),
        ("bot/engine/jobs.py", "from bot.cli.job import follow\n"),
        ("bot/store/database.py", "from bot.engine.jobs import JobService\n"),
        ("bot/domain/seedream.py", "from bot.store.database import Storage\n"),
        ("bot/domain/periods.py", "from bot.settings import Settings\n"),
        ("bot/domain/poll_policy.py", "from bot.runcomfy.client import RemoteState\n"),
        ("bot/domain/money.py", "from bot.runcomfy.price import micros_of\n"),
        ("bot/domain/poll_policy.py", "import bot.runcomfy.backoff\n"),
        ("bot/cli/generate.py", "from bot.discord.bot import SeedreamBot\n"),
    ],
)
def test_forbidden_imports_fail_the_lint(path, source):
    assert ruff_refuses(path, source)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("bot/discord/presenter.py", "import discord\n"),
        ("cogs/imagine.py", "from discord import app_commands\n"),
        ("bot/runcomfy/client.py", "from bot.runcomfy.errors import AuthError\n"),
        ("bot/engine/jobs.py", "from bot.runcomfy.client import RunComfyClient\n"),
        ("bot/domain/poll_policy.py", "from bot.domain.job_state import JobState\n"),
        ("bot/engine/jobs.py", "from bot.store.database import Storage\n"),
        ("bot/discord/texts.py", "from bot.engine.refusals import QuotaRefused\n"),
        ("bot/cli/generate.py", "from bot.engine.image_files import accept_image\n"),
    ],
)
def test_allowed_imports_pass(path, source):
    assert not ruff_refuses(path, source)
