"""Why a set failed, in the words its status message shows (in the server's language).

The engine records the reason as a fixed English sentence, or as the kind of error RunComfy refused the job with;
the ones it knows are worded here through the catalog. Others (RunComfy's own words) are shown as recorded.
"""

from __future__ import annotations

import re

from bot.discord.delivery_notes import stop_reason
from bot.discord.i18n import Text, join, t, tn, translate_to
from bot.discord.job_start import NOT_STARTED
from bot.discord.runcomfy_texts import runcomfy_problem
from bot.engine.jobs import refused_kind
from bot.engine.outcome_unknown import OUTCOME_UNKNOWN_MESSAGE
from bot.engine.outcomes import EXPIRED_MESSAGE, GENERATION_FAILED, NOT_DOWNLOADED_MESSAGE, RESTART_MESSAGE

REASONS = {
    RESTART_MESSAGE: t("the bot restarted before it could send this job to RunComfy"),
    EXPIRED_MESSAGE: t("RunComfy no longer knows this job (it expired)"),
    NOT_DOWNLOADED_MESSAGE: t("the images could not be downloaded from RunComfy (they may have expired)"),
    OUTCOME_UNKNOWN_MESSAGE: t(
        "RunComfy did not confirm the job, so it may have been made (and billed) without the bot knowing; "
        "it was not sent again"
    ),
    NOT_STARTED: t("something went wrong before it could be sent to RunComfy"),
    GENERATION_FAILED: t("RunComfy could not generate it"),
}
SOMETHING_WRONG = t("something went wrong")
# The engine's reasons that carry its deadline, as `duration_text` words it ("2 hours 30 minutes").
_NOT_FINISHED = re.compile(r"RunComfy did not finish it within (.+)")
_NOT_DELIVERED = re.compile(r"the images could not be delivered within (.+)")
_DURATION = re.compile(r"(?:(\d+) hours?)? ?(?:(\d+) minutes?)?|(\d+) seconds?")


def _duration(text: str) -> Text | str:
    found = _DURATION.fullmatch(text)
    if found is None or not any(found.groups()):
        return text
    hours, minutes, seconds = (int(part) if part else 0 for part in found.groups())
    if found[3]:
        return tn("{count} second", "{count} seconds", seconds)
    parts = []
    if hours:
        parts.append(tn("{count} hour", "{count} hours", hours))
    if minutes:
        parts.append(tn("{count} minute", "{count} minutes", minutes))
    return join(*parts)


def failure_reason(error: str | None, language: str) -> str:
    """`error` as recorded for the job, in `language` where the bot knows the sentence."""
    if not error:
        return SOMETHING_WRONG.in_language(language)
    known = REASONS.get(error)
    if known is not None:
        return known.in_language(language)
    refused = refused_kind(error)
    if refused is not None:
        return runcomfy_problem(refused).in_language(language)
    if deadline := _NOT_FINISHED.fullmatch(error):
        return t("RunComfy did not finish it within {limit}", limit=_duration(deadline[1])).in_language(language)
    if deadline := _NOT_DELIVERED.fullmatch(error):
        text = t("the images could not be delivered within {limit}", limit=_duration(deadline[1]))
        return text.in_language(language)
    stopped = stop_reason(error)
    if stopped is not error:
        return translate_to(stopped, language)
    prefix = GENERATION_FAILED + " ("
    if error.startswith(prefix) and error.endswith(")"):
        detail = error[len(prefix) : -1]
        return t("RunComfy could not generate it ({detail})", detail=detail).in_language(language)
    return error
