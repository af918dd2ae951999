"""The tracker's settings: polling, deadline, downloads, and the secrets masked in upstream text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import secrets_of

if TYPE_CHECKING:
    from bot.settings import Settings


@dataclass(frozen=True)
class TrackerConfig:
    workdir: Path
    poll_interval: float = 1.0
    poll_max_interval: float = 15.0
    job_deadline: float = 1800.0
    # A queue position alone is stored at most this often (every poll brings one; the status shows the latest).
    position_write_interval: float = 10.0
    download_max_bytes: int = 40 * 1024 * 1024
    download_concurrency: int = 4
    download_timeout: float = 120.0
    secrets: tuple[str, ...] = field(default=(), repr=False)  # masked in every upstream text shown to members

    @classmethod
    def from_settings(cls, settings: Settings, workdir: Path) -> TrackerConfig:
        return cls(
            workdir=workdir,
            poll_interval=settings.poll_interval_seconds,
            poll_max_interval=settings.poll_max_interval_seconds,
            job_deadline=settings.job_deadline_seconds,
            download_max_bytes=settings.download_max_bytes,
            download_concurrency=settings.download_concurrency,
            download_timeout=settings.download_timeout_seconds,
            secrets=tuple(secrets_of(settings)),
        )
