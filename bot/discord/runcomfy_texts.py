"""RunComfy's errors (their kind, `bot.runcomfy.errors.ErrorKind`) in the words a set's status message shows."""

from __future__ import annotations

from bot.discord.i18n import Text, t
from bot.runcomfy.errors import ErrorKind

PROBLEMS: dict[ErrorKind, Text] = {
    ErrorKind.FAILED: t("RunComfy could not handle the request; please try again later"),
    ErrorKind.AUTH: t("the bot's RunComfy API key was refused; please ask the bot's owner to check it"),
    ErrorKind.OUT_OF_CREDIT: t("the bot's RunComfy account is out of credit; please let the bot's owner know"),
    ErrorKind.INVALID_INPUT: t("RunComfy did not accept these options; please check the prompt and options"),
    ErrorKind.NOT_FOUND: t("RunComfy no longer knows this job (it may have expired)"),
    ErrorKind.BUSY: t("RunComfy is busy right now; please try again in a moment"),
    ErrorKind.SERVER: t("RunComfy is having trouble right now; please try again in a few minutes"),
    ErrorKind.UNREACHABLE: t("RunComfy could not be reached; please try again in a few minutes"),
    ErrorKind.OUTCOME_UNKNOWN: t(
        "RunComfy did not confirm the job, so it may have been made (and billed) without the bot knowing; "
        "it was not sent again"
    ),
    ErrorKind.TOO_LARGE: t("an image was too large to download"),
    ErrorKind.DOWNLOAD_REFUSED: t("an image link pointed somewhere the bot does not download from"),
    ErrorKind.INVALID_REQUEST_ID: t("RunComfy's id for the job was not valid"),
}


def runcomfy_problem(kind: ErrorKind) -> Text:
    return PROBLEMS[kind]
