"""`seedream-bot generate`: one image set from the terminal, saved into a folder.

Progress goes to stderr (one line updated in place on a terminal, plain lines otherwise); the saved files' paths go
to stdout, one per line. Ctrl-C cancels a queued job at RunComfy; a running job cannot be cancelled there, so it is
left to finish. A second Ctrl-C quits at once.
Exit codes: 0 done, 2 bad input or settings, 3 token refused, 4 RunComfy failure or failed job, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from bot.image_files import accept_image
from bot.logging_setup import configure_logging
from bot.poll_policy import Ask, PollPolicy, RunWatch, phase_of
from bot.run_times import RunTimes
from bot.runcomfy import (
    AuthError,
    CancelOutcome,
    JobResult,
    JobStatus,
    RemoteState,
    RunComfyClient,
    RunComfyError,
)
from bot.seedream import DEFAULT_ASPECT, MAX_IMAGES, MIN_IMAGES, SeedreamRequest, ValidationError, build_request
from bot.settings import Settings, SettingsError, load_settings, secrets_of

EXIT_OK, EXIT_INPUT, EXIT_AUTH, EXIT_API, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


class NotAnImage(Exception):
    """A download was not a PNG, JPEG or WebP image; it was deleted."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help='what to draw; it may state the count, e.g. "4 images of a lighthouse"')
    parser.add_argument(
        "--images",
        type=int,
        help=f"number of images, {MIN_IMAGES} to {MAX_IMAGES} (default: the count in the prompt, else 3)",
    )
    parser.add_argument("--aspect", default=DEFAULT_ASPECT.ratio, help="1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3 or 21:9")
    parser.add_argument("--seed", type=int, help="a whole number, for repeatable results")
    parser.add_argument("--mode", default="fast", help="fast (default) or standard (better, slower)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the images (default: here)")


def main(args: argparse.Namespace) -> int:
    try:
        request = build_request(args.prompt, args.images, args.aspect, args.seed, args.mode)
        settings = load_settings(require="generate", create_dirs=False)
    except (ValidationError, SettingsError) as exc:
        _error(str(exc))
        return EXIT_INPUT
    configure_logging(settings)  # warnings quote RunComfy's answers: they go out masked, like the bot's logs
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"The output folder {args.out} cannot be created: {exc.strerror}.")
        return EXIT_INPUT
    return asyncio.run(_generate(request, settings, args.out))


def _error(text: str) -> None:
    print(f"seedream-bot: {text}", file=sys.stderr, flush=True)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Progress:
    """One status line: rewritten in place on a terminal, printed again only on change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_key: object = None
        self._open_line = False

    def show(self, text: str, key: object) -> None:
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")
            self._open_line = True
        elif key != self._last_key:
            self._stream.write(text + "\n")
        self._last_key = key
        self._stream.flush()

    def end_line(self) -> None:
        if self._open_line:
            self._stream.write("\n")
            self._stream.flush()
            self._open_line = False


def describe(status: JobStatus, images: int, elapsed: float) -> str:
    """The progress line for a status, like `Queued at RunComfy, position 3 (12s)`."""
    if status.state is RemoteState.QUEUED:
        where = f", position {status.queue_position}" if status.queue_position is not None else ""
        text = f"Queued at RunComfy{where}"
    elif status.state is RemoteState.RUNNING:
        text = f"Generating {images} image{'s' if images != 1 else ''}"
    elif status.state is RemoteState.UNKNOWN:
        text = f"Waiting (RunComfy says {status.raw_state!r})"
    else:
        text = f"Job {status.state.value}"
    return f"{text} ({_duration(elapsed)})"


class _Interrupts:
    """Ctrl-C as an event the job loop checks; a second Ctrl-C cancels the whole command."""

    def __init__(self, progress: _Progress) -> None:
        self.event = asyncio.Event()
        self._progress = progress
        self._count = 0
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            self._installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            self._installed = False

    def _on_sigint(self) -> None:
        self._count += 1
        self.event.set()
        if self._count == 1:
            self._progress.end_line()
            _note("Stopping: press Ctrl-C again to quit at once.")
        elif self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        if self._installed:
            self._loop.remove_signal_handler(signal.SIGINT)


async def _generate(request: SeedreamRequest, settings: Settings, out: Path) -> int:
    progress = _Progress(sys.stderr)
    interrupts = _Interrupts(progress)
    client = RunComfyClient(
        settings.runcomfy_api_token,
        settings.runcomfy_base_url,
        max_concurrent_requests=settings.runcomfy_max_concurrent_requests,
        secrets=secrets_of(settings),
        download_timeout=settings.download_timeout_seconds,
    )
    try:
        async with client:
            return await _run(client, request, settings, out, progress, interrupts)
    except asyncio.CancelledError:
        progress.end_line()
        _error("Stopped at once; a request already sent to RunComfy was left as it was.")
        return EXIT_INTERRUPTED
    except AuthError:
        progress.end_line()
        _error("RunComfy refused the API token: check RUNCOMFY_API_TOKEN (RunComfy profile > API Keys).")
        return EXIT_AUTH
    except RunComfyError as exc:
        progress.end_line()
        _error(f"{exc.user_message} ({exc})")
        return EXIT_API
    finally:
        interrupts.close()


async def _run(
    client: RunComfyClient,
    request: SeedreamRequest,
    settings: Settings,
    out: Path,
    progress: _Progress,
    interrupts: _Interrupts,
) -> int:
    loop = asyncio.get_running_loop()
    started = loop.time()
    progress.show("Submitting to RunComfy...", "submit")
    handle = await client.submit(request)  # not interrupted: once sent, the job must be known to be cancelled
    progress.end_line()
    rid = handle.request_id
    _note(f"Request {rid}: {request.images} image(s), {request.aspect.ratio}, {request.mode.value} mode.")
    # The bot's poll policy; with no database here, the run time expected is the default one.
    policy = PollPolicy.from_intervals(settings.poll_interval_seconds, settings.poll_max_interval_seconds)
    expected, spread = RunTimes().expect(request.options(), request.images)
    run = RunWatch(policy.front)
    ask = Ask.STATUS
    while True:
        if interrupts.event.is_set():
            progress.end_line()
            return await _cancel(client, rid)
        result = await client.result(rid) if ask is Ask.RESULT else None
        status = await client.status(rid) if result is None else JobStatus(rid, result.state, None, result.state.value)
        progress.show(describe(status, request.images, loop.time() - started), (status.state, status.queue_position))
        if status.state.terminal:
            result = result or await client.result(rid)
            if result.state.terminal:
                break
            ask, delay = Ask.RESULT, policy.front  # the result lags behind the status: look again soon
        else:
            run.saw(phase_of(status.state), loop.time())
            poll = policy.next(
                phase_of(status.state),
                position=status.queue_position,
                elapsed=run.elapsed(loop.time()),
                expected=expected,
                spread=spread,
            )
            ask, delay = poll.ask, poll.delay
        if loop.time() - started > settings.job_deadline_seconds:
            progress.end_line()
            _error(f"Gave up after {_duration(loop.time() - started)}; job {rid} may still finish at RunComfy.")
            return EXIT_API
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupts.event.wait(), delay)
    progress.end_line()
    return await _deliver(client, result, request, settings, out, interrupts, loop.time() - started)


async def _cancel(client: RunComfyClient, rid: str) -> int:
    try:
        cancelled = await client.cancel(rid)
    except RunComfyError as exc:
        _error(f"Interrupted, but job {rid} could not be cancelled at RunComfy: {exc.user_message}")
        return EXIT_INTERRUPTED
    if cancelled.outcome is CancelOutcome.CANCELLED:
        _note(f"Interrupted: the queued job {rid} was cancelled at RunComfy.")
    elif cancelled.state is RemoteState.QUEUED:
        _error(f"Interrupted, but RunComfy would not cancel the queued job {rid} just now; it may still run.")
    elif cancelled.state is RemoteState.RUNNING:
        _note(f"Interrupted: job {rid} is already running and cannot be cancelled; it will finish at RunComfy.")
    else:
        _note(f"Interrupted: job {rid} cannot be cancelled any more (it is {cancelled.state.value}).")
    return EXIT_INTERRUPTED


def _file_name(rid: str, index: int) -> str:
    return f"{rid}_{index:02d}.png"  # renamed to the real format's suffix once downloaded


async def _deliver(
    client: RunComfyClient,
    result: JobResult,
    request: SeedreamRequest,
    settings: Settings,
    out: Path,
    interrupts: _Interrupts,
    elapsed: float,
) -> int:
    rid = result.request_id
    if result.state is RemoteState.FAILED:
        _error(f"RunComfy could not generate the images: {result.error}")
        return EXIT_API
    if result.state is RemoteState.CANCELLED:
        _error(f"Job {rid} was cancelled at RunComfy.")
        return EXIT_API
    if not result.image_urls:
        _error(f"Job {rid} finished without any image.")
        return EXIT_API
    urls = result.image_urls[: request.images]  # a server listing more than asked gets no more saved
    count = len(urls)
    shortfall = f" (RunComfy made {count} of the {request.images} asked)" if count < request.images else ""
    _note(f"Done in {_duration(elapsed)}{shortfall}; downloading {count} image(s)...")
    limit = asyncio.Semaphore(settings.download_concurrency)

    async def fetch(index: int, url: str) -> Path:
        async with limit:
            dest = out / _file_name(rid, index)
            await client.download(url, max_bytes=settings.download_max_bytes, dest=dest)
        image = await accept_image(dest)
        if image is None:
            raise NotAnImage(f"image {index} is not a PNG, JPEG or WebP image")
        return image

    downloads = asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls, 1)), return_exceptions=True)
    interrupted = asyncio.ensure_future(interrupts.event.wait())
    await asyncio.wait({downloads, interrupted}, return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not downloads.done():
        downloads.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await downloads
        _error(f"Interrupted while downloading; job {rid} is finished at RunComfy (its images expire in about a day).")
        return EXIT_INTERRUPTED
    failures = 0
    for outcome in downloads.result():
        if isinstance(outcome, Path):
            print(outcome, flush=True)
        else:
            failures += 1
            if isinstance(outcome, NotAnImage):
                _error(f"An image was not saved: {outcome}.")
                continue
            text = outcome.user_message if isinstance(outcome, RunComfyError) else type(outcome).__name__
            _error(f"An image could not be saved: {text} ({outcome})")
    return EXIT_API if failures else EXIT_OK
