"""One bot process per database: an exclusive lock on `<database>.lock`, held while the bot runs.

Two bots on one SQLite file would both resume the same unfinished jobs. The lock is an `flock` on a
sidecar file, so the operating system releases it when its holder dies, however it dies: a crashed
bot never blocks the next start. The holder writes its pid, host and start time into the file, for
the message the next process prints. Other commands (`check`, `health`) do not take the lock.

`flock` is local to one machine: two hosts sharing the file over a network file system are not kept apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any


class DatabaseLocked(Exception):
    """Another process holds the database; the message names it."""


class DatabaseLockError(Exception):
    """The lock file cannot be created or opened; the message says why."""


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """Held from `acquire` until `release` (or the process ends). Blocking calls: run off the event loop."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> DatabaseLock:
        """Take the lock of `database` without waiting. Raises DatabaseLocked or DatabaseLockError."""
        path = lock_path(Path(database))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DatabaseLockError(f"The lock file {path} cannot be created: {exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _describe(_read_holder(fd))
            os.close(fd)
            raise DatabaseLocked(
                f"the database {database} is in use by another seedream-bot ({other}); "
                "stop that one first, or set DATABASE_PATH to another file."
            ) from None
        except OSError as exc:
            os.close(fd)
            raise DatabaseLockError(f"The lock file {path} cannot be locked: {exc.strerror or exc}.") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        with contextlib.suppress(OSError):  # the lock holds even if its description cannot be written
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    parts = []
    if isinstance(holder.get("pid"), int):
        parts.append(f"pid {holder['pid']}")
    if isinstance(holder.get("host"), str):
        parts.append(f"on host {holder['host'][:100]}")
    if isinstance(holder.get("since"), int | float):
        parts.append("since " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder["since"])))
    return " ".join(parts) or "a process that has not said which"
