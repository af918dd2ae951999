"""Shared helpers for the /imagine end-to-end tests: a bot wired to both fakes, and ways to look at what it did."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from bot.discord.bot import SeedreamBot
from bot.domain.job_state import JobState
from bot.runcomfy.client import RunComfyClient
from bot.store.database import Job
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_routes import InteractionState
from tests.fixtures.runcomfy import fast_retry_policy

FAST = {
    "poll_interval_seconds": 0.05,
    "poll_max_interval_seconds": 0.2,
    "status_edit_interval_seconds": 0.05,
    "status_queue_edit_interval_seconds": 0.05,
}
CANCEL_PREFIX = "seedream:cancel:"


async def start_imagine_bot(start_bot, fake_runcomfy, **overrides: Any) -> SeedreamBot:
    client = RunComfyClient(
        fake_runcomfy.token,
        fake_runcomfy.base_url,
        retry=fast_retry_policy(),
        connect_timeout=2.0,
        submit_read_timeout=5.0,
        poll_read_timeout=5.0,
    )
    settings = {**FAST, "runcomfy_base_url": fake_runcomfy.base_url, "runcomfy_api_token": fake_runcomfy.token}
    settings.update(overrides)
    return await start_bot(services={"runcomfy": client}, **settings)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:  # noqa: ASYNC109
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def user_id(member: dict[str, Any]) -> int:
    return int(member["user"]["id"])


async def imagine(
    fake: FakeDiscord, bot: SeedreamBot, options: dict[str, Any], *, by: dict[str, Any] | None = None, **extra: Any
) -> tuple[InteractionState, Job]:
    """Run /imagine as `by` (default the member) and return the interaction and its job once it was submitted."""
    by = by or fake.world.member
    known = {job.id for job in await bot.storage.recent_jobs(fake.world.guild_id, user_id(by), 100)}
    interaction = await fake.run_command("imagine", options, by=by, **extra)

    async def submitted() -> Job | None:
        for job in await bot.storage.recent_jobs(fake.world.guild_id, user_id(by), 100):
            if job.id not in known and (job.request_id or job.state.terminal):
                return job
        return None

    return interaction, await eventually(submitted)


async def job_in(bot: SeedreamBot, job_id: str, *states: JobState, timeout: float = 5.0) -> Job:  # noqa: ASYNC109
    """The job once it is in one of `states`."""

    async def reached() -> Job | None:
        job = await bot.storage.get_job(job_id)
        return job if job is not None and job.state in states else None

    return await eventually(reached, timeout)


def embed_text(message: dict[str, Any] | None) -> str:
    """Everything a member reads in a message: content, and each embed's title, description and fields."""
    if message is None:
        return ""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields") or []]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


def custom_ids(message: dict[str, Any] | None) -> list[str]:
    rows = (message or {}).get("components") or []
    return [item.get("custom_id", "") for row in rows for item in row.get("components", [])]


def has_cancel(message: dict[str, Any] | None) -> bool:
    return any(custom.startswith(CANCEL_PREFIX) for custom in custom_ids(message))


def channel_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    return list(fake.messages.get(fake.world.channel_id, []))


def image_messages(fake: FakeDiscord, job: Job) -> list[dict[str, Any]]:
    """The messages carrying the job's images (attachments or links), in the order they were posted."""
    pattern = re.compile(rf"^seedream_{job.id}_\d\d\.(png|jpg|webp)$")
    found = []
    for message in channel_messages(fake):
        if any(pattern.match(a["filename"]) for a in message["attachments"]) or "too large to upload" in (
            message.get("content") or ""
        ):
            found.append(message)
    return found


def filenames(messages: list[dict[str, Any]]) -> list[str]:
    return [a["filename"] for message in messages for a in message["attachments"]]


def expected_names(job: Job, count: int, suffix: str = "png") -> list[str]:
    return [f"seedream_{job.id}_{index:02d}.{suffix}" for index in range(1, count + 1)]


def status_message(fake: FakeDiscord, job: Job, interaction: InteractionState | None = None) -> dict[str, Any] | None:
    """The job's status message: the bot's own channel message once it moved there, else the command's reply."""
    moved = [m for m in channel_messages(fake) if "webhook_id" not in m and f"Job {job.id}" in embed_text(m)]
    if moved:
        return moved[-1]
    if interaction is not None:
        return fake.original_for(interaction)
    return fake.message(job.reply_message_id) if job.reply_message_id else None


async def status_says(fake: FakeDiscord, job: Job, text: str, interaction: InteractionState | None = None) -> str:
    """Wait until the status message contains `text`; return all it says."""

    def check() -> str | None:
        said = embed_text(status_message(fake, job, interaction))
        return said if text in said else None

    try:
        return await eventually(check)
    except AssertionError:
        said = embed_text(status_message(fake, job, interaction))
        raise AssertionError(f"the status never said {text!r}; it says:\n{said}") from None


async def private_answer(fake: FakeDiscord, interaction: InteractionState) -> str:
    """The text only the member sees: an ephemeral reply, or an ephemeral followup after a deleted deferral."""

    def find() -> str | None:
        candidates = [fake.original_for(interaction), *fake.followups_for(interaction)]
        texts = [m["content"] for m in candidates if m and m["flags"] & p.EPHEMERAL and not m["flags"] & p.LOADING]
        return texts[-1] if texts else None

    return await eventually(find)


async def refused_privately(fake: FakeDiscord, interaction: InteractionState) -> str:
    """The refusal, checked to be the interaction's first and only response, ephemeral: nothing public appeared."""
    callback = await fake.wait_for_callback(interaction)
    assert callback.json["type"] == 4, callback.json
    assert callback.json["data"]["flags"] & p.EPHEMERAL
    original = fake.original_for(interaction)
    assert original is not None and original["flags"] & p.EPHEMERAL
    assert fake.followups_for(interaction) == []
    assert not [m for m in fake.deleted_messages if m["id"] == original["id"]]
    return original["content"]


async def usage_of(bot: SeedreamBot, fake: FakeDiscord, member: dict[str, Any] | None = None) -> tuple[int, int]:
    """(images charged, images reserved) for the member this period."""
    usage = await bot.quotas.usage(fake.world.guild_id, user_id(member or fake.world.member))
    return usage.used, usage.reserved


def make_job(**changes: Any) -> Job:
    """A job record as the database would hold it, for unit tests of pure functions."""
    values: dict[str, Any] = {
        "id": "0123456789ab",
        "guild_id": 1,
        "channel_id": 2,
        "user_id": 3,
        "options": {"prompt": "a fox", "images": 4, "aspect": "2560:1440 (16:9)", "seed": None, "mode": "fast"},
        "request_id": "req-1",
        "state": JobState.QUEUED,
        "queue_position": None,
        "images_reserved": 4,
        "images_delivered": 0,
        "images_charged": 0,
        "settled": False,
        "error": None,
        "interaction_token": None,
        "application_id": None,
        "token_created_at": None,
        "reply_message_id": None,
        "reply_channel_id": None,
        "created_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
        "started_at": None,
        "finished_at": None,
    }
    values.update(changes)
    return Job(**values)
