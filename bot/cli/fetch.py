"""`seedream-bot fetch REQUEST_ID`: save the images of a job submitted earlier (waiting if it is still running).

For a `generate` that was stopped while its paid job was generating. Costs nothing: it only reads the job.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot.cli.job import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    Interrupts,
    Job,
    Progress,
    checked_folder,
    client_for,
    error,
    fetch_command,
    note,
    runcomfy_failure,
    save_images,
    wait_for_result,
)
from bot.logging_setup import configure_logging
from bot.runcomfy.client import RunComfyError
from bot.runcomfy.errors import InvalidRequestIdError, check_request_id
from bot.settings import Settings, SettingsError, load_settings

DESCRIPTION = (
    "Save the images of a RunComfy job started earlier (by `seedream-bot generate`), waiting if it is still "
    "running. Costs nothing. Needs only RUNCOMFY_API_TOKEN."
)
EPILOG = """\
The images are saved as seedream_<request>_01.png ... RunComfy keeps them for about a day.
exit codes: 0 done, 2 bad input or settings, 3 token refused, 4 RunComfy failure or failed job, 130 interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id", metavar="REQUEST_ID", help="the job's request id, as `generate` printed it")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the images (default: here)")


def main(args: argparse.Namespace) -> int:
    try:
        rid = check_request_id(args.request_id)
        settings = load_settings(require="generate", create_dirs=False)
    except InvalidRequestIdError:
        error("REQUEST_ID is not a RunComfy request id: copy it from what `seedream-bot generate` printed.")
        return EXIT_INPUT
    except SettingsError as exc:
        error(str(exc))
        return EXIT_INPUT
    configure_logging(settings)
    problem = checked_folder(args.out)
    if problem:
        error(problem)
        return EXIT_INPUT
    return asyncio.run(_fetch(rid, settings, args.out))


async def _fetch(rid: str, settings: Settings, out: Path) -> int:
    progress = Progress(sys.stderr)
    interrupts = Interrupts(progress)
    client = client_for(settings)
    started = asyncio.get_running_loop().time()
    job = Job(client, settings, out, progress, interrupts, started, rid=rid, cancellable=False)
    try:
        async with client:
            result = await wait_for_result(job)
            return result if isinstance(result, int) else await save_images(job, result)
    except asyncio.CancelledError:
        progress.end_line()
        note(f"Stopped. To try again: {fetch_command(rid, out)}")
        return EXIT_INTERRUPTED
    except RunComfyError as exc:
        return runcomfy_failure(progress, exc)
    finally:
        interrupts.close()
