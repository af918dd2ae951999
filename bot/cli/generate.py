"""`seedream-bot generate`: one image set from the terminal, saved into a folder.

Following the job and saving its images is `bot.cli.job`, shared with `seedream-bot fetch`. Ctrl-C cancels a queued
job at RunComfy; a generating one cannot be cancelled, so the command keeps waiting (a second Ctrl-C quits) and says
how to collect the images later.
Before submitting it prints the set's price (RunComfy's quote, else PRICE_PER_IMAGE_USD) and, when standard input
is a terminal, asks for confirmation (`--yes` skips the question; with no terminal, as in scripts and cron, nothing
is asked). At the end it prints what the set cost.
Exit codes: 0 done, 1 declined at the confirmation, 2 bad input or settings, 3 token refused, 4 RunComfy failure or
failed job, 130 interrupted.
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
    describe,
    error,
    fetch_command,
    note,
    runcomfy_failure,
    save_images,
    wait_for_result,
)
from bot.cli.quote import EXIT_DECLINED, cost_line, quote
from bot.domain.seedream import DEFAULT_ASPECT, MAX_IMAGES, MIN_IMAGES, SeedreamRequest, ValidationError, build_request
from bot.logging_setup import configure_logging
from bot.runcomfy.client import RunComfyError
from bot.settings import Settings, SettingsError, load_settings

__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "describe", "main"]

DESCRIPTION = (
    "Generate one Seedream 4.0 image set at RunComfy and save it in a folder. This is a real, paid job: the price "
    "is printed first and, on a terminal, confirmed (--yes skips the question). Needs only RUNCOMFY_API_TOKEN."
)
EPILOG = """\
defaults: --aspect 16:9 (2560x1440), --mode fast, --images the count the prompt states, else 3, --seed random.
The images are saved as seedream_<request>_01.png ... (or .jpg/.webp, as RunComfy made them).

Ctrl-C cancels a job still queued. Once it is generating it cannot be cancelled: Ctrl-C then keeps waiting
(a second Ctrl-C quits) and prints the command that collects the images later: seedream-bot fetch.

The price comes from RunComfy (else PRICE_PER_IMAGE_USD); the question is asked only when standard input is a
terminal. The actual cost is printed at the end.

exit codes: 0 done, 1 declined, 2 bad input or settings, 3 token refused, 4 RunComfy failure or failed job,
130 interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help='what to draw; it may state the count, e.g. "4 images of a lighthouse"')
    parser.add_argument(
        "--images",
        type=int,
        help=f"number of images, {MIN_IMAGES} to {MAX_IMAGES} (default: the count in the prompt, else 3)",
    )
    parser.add_argument(
        "--aspect",
        default=DEFAULT_ASPECT.ratio,
        help="1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3 or 21:9 (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, help="a whole number, for repeatable results (default: random)")
    parser.add_argument("--mode", default="fast", help="fast or standard: better, slower (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the images (default: here)")
    parser.add_argument("--yes", "-y", action="store_true", help="submit without asking to confirm the price")


def main(args: argparse.Namespace) -> int:
    try:
        request = build_request(args.prompt, args.images, args.aspect, args.seed, args.mode)
        settings = load_settings(require="generate", create_dirs=False)
    except (ValidationError, SettingsError) as exc:
        error(str(exc))
        return EXIT_INPUT
    configure_logging(settings)  # warnings quote RunComfy's answers: they go out masked, like the bot's logs
    problem = checked_folder(args.out)
    if problem:
        error(problem)
        return EXIT_INPUT
    quoted = asyncio.run(quote(request, settings))
    if isinstance(quoted, int):
        return quoted  # the account is out of credit, or the token was refused: nothing to confirm
    price = quoted.per_image_micros
    if not args.yes and sys.stdin.isatty() and not confirm("Submit this paid job? [y/N] "):
        note("Nothing was sent to RunComfy.")
        return EXIT_DECLINED
    return asyncio.run(_generate(request, settings, args.out, price))


def confirm(question: str) -> bool:
    """Ask on standard error (standard output carries only the saved paths); anything but yes is no."""
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


async def _generate(request: SeedreamRequest, settings: Settings, out: Path, price: int) -> int:
    progress = Progress(sys.stderr)
    interrupts = Interrupts(progress)
    client = client_for(settings)
    started = asyncio.get_running_loop().time()
    job = Job(client, settings, out, progress, interrupts, started, request.images, request.options())
    try:
        async with client:
            progress.show("Submitting to RunComfy...", "submit")
            handle = await client.submit(request)  # not interrupted: once sent, the job must be known to be cancelled
            progress.end_line()
            job.rid = handle.request_id
            note(f"Request {job.rid}: {request.images} image(s), {request.aspect.ratio}, {request.mode.value} mode.")
            result = await wait_for_result(job)
            if isinstance(result, int):
                return result
            code = await save_images(job, result)
            note(cost_line(result, price))
            return code
    except asyncio.CancelledError:
        progress.end_line()
        if job.rid is None:
            error("Stopped at once; a request already sent to RunComfy was left as it was.")
        else:
            error(f"Stopped at once; job {job.rid} was left as it was at RunComfy.")
            note(f"To collect its images later: {fetch_command(job.rid, out)}")
        return EXIT_INTERRUPTED
    except RunComfyError as exc:
        return runcomfy_failure(progress, exc)
    finally:
        interrupts.close()
