"""What a member reads when the engine refuses a job: each refusal's data, worded (one place to translate)."""

from __future__ import annotations

from bot.discord import quota_messages
from bot.discord.i18n import t
from bot.domain.seedream import ValidationError
from bot.engine.jobs import OutOfCredit
from bot.engine.prompt_filter import PromptBlocked
from bot.engine.refusals import OverLimit, QuotaRefused, Refusal, TooManyJobs


def quota_refusal(refusal: Refusal) -> str:
    if isinstance(refusal, TooManyJobs):
        return quota_messages.too_many_jobs(refusal.unfinished, refusal.cap)
    if isinstance(refusal, OverLimit):
        return quota_messages.over_limit(refusal.usage, refusal.wanted)
    return quota_messages.over_budget(refusal.budget, refusal.left, refusal.wanted, refusal.period, refusal.resets_at)


def prompt_blocked(matched: str) -> str:
    return t(
        "Your prompt wasn't sent: this server doesn't allow “{term}” in prompts. "
        "Please rephrase it and try again. Nothing was taken from your quota.",
        term=matched,
    )


def refusal_text(error: QuotaRefused | ValidationError | OutOfCredit) -> str:
    """The private answer to a member whose job was refused."""
    if isinstance(error, QuotaRefused):
        return quota_refusal(error.refusal)
    if isinstance(error, PromptBlocked):
        return prompt_blocked(error.matched)
    if isinstance(error, OutOfCredit):
        return quota_messages.OUT_OF_CREDIT
    return str(error)  # the request's own validation message
