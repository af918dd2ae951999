"""Following one RunComfy job from the terminal: the progress line, Ctrl-C, waiting for the end, saving the images.

Shared by `seedream-bot generate` (which submits the job first) and `seedream-bot fetch` (which collects a job
submitted earlier). Progress goes to stderr, the saved files' paths to stdout, one per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from bot.cli.problems import TOKEN_REFUSED, problem
from bot.domain.poll_policy import PollPolicy, RunWatch
from bot.domain.seedream import MAX_IMAGES
from bot.engine.image_files import accept_image
from bot.engine.polling import End, poll_job
from bot.runcomfy.client import (
    AuthError,
    CancelOutcome,
    JobResult,
    JobStatus,
    RemoteState,
    RunComfyClient,
    RunComfyError,
)
from bot.settings import Settings, secrets_of
from bot.store.run_times import RunTimes

EXIT_OK, EXIT_INPUT, EXIT_AUTH, EXIT_API, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
TICK_SECONDS = 1.0  # the elapsed time on the progress line counts up between polls


class NotAnImage(Exception):
    """A download was not a PNG, JPEG or WebP image; it was deleted."""


def error(text: str) -> None:
    print(f"seedream-bot: {text}", file=sys.stderr, flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def fetch_command(rid: str, out: Path) -> str:
    return f"seedream-bot fetch {rid} --out {out}"


def file_name(rid: str, index: int) -> str:
    """Named like the images the bot posts on Discord; the suffix becomes the real format's once downloaded."""
    return f"seedream_{rid}_{index:02d}.png"


def checked_folder(out: Path) -> str | None:
    """Create the output folder; the problem in words if it cannot be one."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder: give a folder (it is created if missing)."
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"The output folder {out} cannot be created: {exc.strerror}."
    return None


class Progress:
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


def describe(status: JobStatus, images: int | None, elapsed: float) -> str:
    """The progress line for a status, like `Queued at RunComfy, position 3 (12s)`."""
    if status.state is RemoteState.QUEUED:
        where = f", position {status.queue_position}" if status.queue_position is not None else ""
        text = f"Queued at RunComfy{where}"
    elif status.state is RemoteState.RUNNING:
        text = "Generating images" if images is None else f"Generating {images} image{'s' if images != 1 else ''}"
    elif status.state is RemoteState.UNKNOWN:
        text = f"Waiting (RunComfy says {status.raw_state!r})"
    else:
        text = f"Job {status.state.value}"
    return f"{text} ({duration(elapsed)})"


def client_for(settings: Settings) -> RunComfyClient:
    """The RunComfy client a terminal command uses, set up from the settings."""
    return RunComfyClient(
        settings.runcomfy_api_token,
        settings.runcomfy_base_url,
        max_concurrent_requests=settings.runcomfy_max_concurrent_requests,
        secrets=secrets_of(settings),
        download_timeout=settings.download_timeout_seconds,
    )




def runcomfy_failure(progress: Progress, exc: RunComfyError) -> int:
    """Say why RunComfy stopped the command; its exit code."""
    progress.end_line()
    if isinstance(exc, AuthError):
        error(TOKEN_REFUSED)
        return EXIT_AUTH
    error(f"{problem(exc)} ({exc})")
    return EXIT_API


class Interrupts:
    """Ctrl-C as an event the job loop checks; once the loop has dealt with one, the next quits the command."""

    def __init__(self, progress: Progress) -> None:
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
        if self._count == 1:
            self.event.set()
            self._progress.end_line()
            note("Stopping: press Ctrl-C again to quit at once.")
        elif self._task is not None:
            # Not setting the event too: Python 3.11's wait_for returns a wait that has just finished and drops
            # the cancellation that came with it.
            self._task.cancel()

    def close(self) -> None:
        if self._installed:
            self._loop.remove_signal_handler(signal.SIGINT)


@dataclass
class Job:
    """The job being followed: its request id once known, how many images were asked (None: not known)."""

    client: RunComfyClient
    settings: Settings
    out: Path
    progress: Progress
    interrupts: Interrupts
    started: float
    images: int | None = None
    options: dict[str, Any] | None = None
    rid: str | None = None
    cancellable: bool = True  # False: Ctrl-C just stops watching (the job was not started here)


class _Stop(Exception):
    """The command stops before the job ends, with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


async def wait_for_result(job: Job) -> JobResult | int:
    """Poll like the bot until the job ends; its result, or an exit code if the command stops first."""
    assert job.rid is not None
    loop = asyncio.get_running_loop()
    settings = job.settings
    # The bot's poll policy; with no database here, the run time expected is the default one.
    policy = PollPolicy.from_intervals(settings.poll_interval_seconds, settings.poll_max_interval_seconds)
    expected = RunTimes().expect(job.options or {}, job.images or 3)
    shown: tuple[JobStatus, object] | None = None  # the progress line the pause keeps redrawing

    async def pause(delay: float) -> None:
        assert shown is not None
        await _pause(job, delay, *shown)
        await _check_interrupt(job)

    try:
        await _check_interrupt(job)
        async for seen in poll_job(
            job.client,
            job.rid,
            policy,
            run=RunWatch(policy.front),
            expect=lambda: expected,
            clock=loop.time,
            deadline=job.started + settings.job_deadline_seconds,
            pause=pause,
        ):
            assert seen.status is not None  # failed looks are raised, not yielded
            key = (seen.status.state, seen.status.queue_position)
            shown = (seen.status, key)
            job.progress.show(describe(seen.status, job.images, loop.time() - job.started), key)
            if seen.end is End.RESULT and seen.result is not None:
                job.progress.end_line()
                return seen.result
            if seen.end is End.CANCELLED:
                job.progress.end_line()
                result = await job.client.result(job.rid)
                return result if result.state.terminal else replace(result, state=RemoteState.CANCELLED)
            if seen.end is End.DEADLINE:
                job.progress.end_line()
                waited = duration(loop.time() - job.started)
                error(f"Gave up after {waited}; job {job.rid} may still finish at RunComfy.")
                note(f"To collect its images later: {fetch_command(job.rid, job.out)}")
                return EXIT_API
    except _Stop as stop:
        return stop.code
    raise AssertionError("the poll loop ends only with an end")


async def _check_interrupt(job: Job) -> None:
    """Deal with a Ctrl-C pressed since the last look; raise `_Stop` if the command must stop."""
    if job.interrupts.event.is_set():
        job.interrupts.event.clear()
        job.progress.end_line()
        stop = await _on_interrupt(job)
        if stop is not None:
            raise _Stop(stop)


async def _pause(job: Job, delay: float, status: JobStatus, key: object) -> None:
    """Wait `delay` seconds (less if Ctrl-C is pressed), redrawing the progress line every second."""
    loop = asyncio.get_running_loop()
    until = loop.time() + delay
    while (left := until - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.interrupts.event.wait(), min(left, TICK_SECONDS))
        if job.interrupts.event.is_set():
            return
        job.progress.show(describe(status, job.images, loop.time() - job.started), key)


async def _on_interrupt(job: Job) -> int | None:
    """The first Ctrl-C: cancel a queued job; a generating one is paid for, so keep waiting for its images."""
    assert job.rid is not None
    later = f"To collect its images later: {fetch_command(job.rid, job.out)}"
    if not job.cancellable:
        note(f"Stopped watching job {job.rid}. {later}")
        return EXIT_INTERRUPTED
    try:
        cancelled = await job.client.cancel(job.rid)
    except RunComfyError as exc:
        error(f"Interrupted, but job {job.rid} could not be cancelled at RunComfy: {problem(exc)}")
        note(later)
        return EXIT_INTERRUPTED
    if cancelled.outcome is CancelOutcome.CANCELLED:
        note(f"Interrupted: the queued job {job.rid} was cancelled at RunComfy.")
        return EXIT_INTERRUPTED
    if cancelled.state is RemoteState.QUEUED:
        error(f"Interrupted, but RunComfy would not cancel the queued job {job.rid} just now; it may still run.")
        note(later)
        return EXIT_INTERRUPTED
    if cancelled.state is RemoteState.RUNNING:
        note(
            f"Job {job.rid} is already generating and cannot be cancelled; its images are paid for. Still waiting "
            f"for them: press Ctrl-C again to quit. {later}"
        )
    return None  # generating or finished: go on and save the images


async def save_images(job: Job, result: JobResult) -> int:
    """Download the finished job's images into the output folder; print each saved path."""
    rid = result.request_id
    if result.state is RemoteState.FAILED:
        error(f"RunComfy could not generate the images: {result.error}")
        return EXIT_API
    if result.state is RemoteState.CANCELLED:
        error(f"Job {rid} was cancelled at RunComfy.")
        return EXIT_API
    if not result.image_urls:
        error(f"Job {rid} finished without any image.")
        return EXIT_API
    asked = job.images or MAX_IMAGES
    urls = result.image_urls[:asked]  # a server listing more than asked gets no more saved
    count = len(urls)
    shortfall = f" (RunComfy made {count} of the {asked} asked)" if job.images and count < asked else ""
    elapsed = asyncio.get_running_loop().time() - job.started
    note(f"Done in {duration(elapsed)}{shortfall}; downloading {count} image(s)...")
    limit = asyncio.Semaphore(job.settings.download_concurrency)

    async def fetch(index: int, url: str) -> Path:
        async with limit:
            dest = job.out / file_name(rid, index)
            await job.client.download(url, max_bytes=job.settings.download_max_bytes, dest=dest)
        accepted = await accept_image(dest)
        if accepted is None:
            raise NotAnImage(f"image {index} is not a PNG, JPEG or WebP image")
        return accepted[0]

    downloads = asyncio.gather(*(fetch(i, url) for i, url in enumerate(urls, 1)), return_exceptions=True)
    interrupted = asyncio.ensure_future(job.interrupts.event.wait())
    waiting: set[asyncio.Future[Any]] = {downloads, interrupted}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not downloads.done():
        downloads.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await downloads
        error(f"Interrupted while downloading; job {rid} is finished at RunComfy (its images expire in about a day).")
        note(f"To collect its images later: {fetch_command(rid, job.out)}")
        return EXIT_INTERRUPTED
    failures = 0
    for outcome in downloads.result():
        if isinstance(outcome, Path):
            print(outcome, flush=True)
        else:
            failures += 1
            if isinstance(outcome, NotAnImage):
                error(f"An image was not saved: {outcome}.")
                continue
            text = problem(outcome) if isinstance(outcome, RunComfyError) else type(outcome).__name__
            error(f"An image could not be saved: {text} ({outcome})")
    return EXIT_API if failures else EXIT_OK
