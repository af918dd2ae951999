"""What a member reads when the engine refuses a job: each refusal's data, worded (one place to translate)."""

from __future__ import annotations

from bot.discord import quota_messages
from bot.discord.i18n import Name, Text, option, t, tn
from bot.domain.seedream import Invalid, ValidationError
from bot.engine.jobs import OutOfCredit
from bot.engine.prompt_filter import PromptBlocked
from bot.engine.refusals import OverLimit, QuotaRefused, Refusal, TooManyJobs


def quota_refusal(refusal: Refusal) -> Text:
    if isinstance(refusal, TooManyJobs):
        return quota_messages.too_many_jobs(refusal.unfinished, refusal.cap)
    if isinstance(refusal, OverLimit):
        return quota_messages.over_limit(refusal.usage, refusal.wanted)
    return quota_messages.over_budget(refusal.budget, refusal.left, refusal.wanted, refusal.period, refusal.resets_at)


def prompt_blocked(matched: str) -> Text:
    return t(
        "Your prompt wasn't sent: this server doesn't allow “{term}” in prompts. "
        "Please rephrase it and try again. Nothing was taken from your quota.",
        term=matched,
    )


def refusal_text(error: QuotaRefused | ValidationError | OutOfCredit) -> Text:
    """The private answer to a member whose job was refused."""
    if isinstance(error, QuotaRefused):
        return quota_refusal(error.refusal)
    if isinstance(error, PromptBlocked):
        return prompt_blocked(error.matched)
    if isinstance(error, OutOfCredit):
        return quota_messages.OUT_OF_CREDIT
    return invalid_option(error)


def invalid_option(error: ValidationError) -> Text:
    """Why the options of /imagine were refused, naming the options as the member's Discord does."""
    values, code = error.values, error.code
    if code is Invalid.PROMPT_BLOCKED:
        return prompt_blocked(str(values["matched"]))
    prompt, images, seed = option("prompt"), option("images"), option("seed")
    if code is Invalid.PROMPT_TOO_LONG:
        return t("The `{prompt}` is {length} characters long; the limit is {limit}. Please shorten it.",
                 prompt=prompt, length=values["length"], limit=values["limit"])  # fmt: skip
    if code is Invalid.PROMPT_TOO_LONG_WITH_COUNT:
        return tn(
            "The `{prompt}` is {length} characters long. Please keep it to {room} characters, or say the number of "
            "images in it (for example “{count} image of …”).",
            "The `{prompt}` is {length} characters long. Please keep it to {room} characters, or say the number of "
            "images in it (for example “{count} images of …”).",
            int(values["count"]), prompt=prompt, length=values["length"], room=values["room"],
        )  # fmt: skip
    if code is Invalid.PROMPT_COUNT_OUT_OF_RANGE:
        return tn(
            "The `{prompt}` asks for {count} image; a set has {minimum} to {maximum} images.",
            "The `{prompt}` asks for {count} images; a set has {minimum} to {maximum} images.",
            int(values["count"]), prompt=prompt, minimum=values["minimum"], maximum=values["maximum"],
        )  # fmt: skip
    if code is Invalid.COUNT_MISMATCH:
        return tn(
            "The `{prompt}` asks for {count} image but the `{images}` option says {wanted}. Make them match, or "
            "leave the `{images}` option out.",
            "The `{prompt}` asks for {count} images but the `{images}` option says {wanted}. Make them match, or "
            "leave the `{images}` option out.",
            int(values["count"]), prompt=prompt, images=images, wanted=values["images"],
        )  # fmt: skip
    if code is Invalid.IMAGES_OUT_OF_RANGE:
        return t("`{images}` must be between {minimum} and {maximum}.", images=images,
                 minimum=values["minimum"], maximum=values["maximum"])  # fmt: skip
    if code is Invalid.SEED_OUT_OF_RANGE:
        return t("The `{seed}` must be a whole number from 0 to {maximum}.", seed=seed, maximum=str(values["maximum"]))
    if code is Invalid.UNKNOWN_ASPECT:
        return t("Unknown `{aspect}` “{value}”. Choose one of: {choices}.", aspect=option("aspect"),
                 value=values["value"], choices=values["choices"])  # fmt: skip
    if code is Invalid.UNKNOWN_MODE:
        return t("Unknown `{mode}` “{value}”. Choose {fast} or {standard}.", mode=option("mode"), value=values["value"],
                 fast=Name("choice", "fast"), standard=Name("choice", "standard (better, slower)"))  # fmt: skip
    if code is Invalid.PROMPT_NOT_TEXT:
        return t("The `{prompt}` must be text.", prompt=prompt)
    return t("The `{prompt}` is empty: describe the images you want.", prompt=prompt)
