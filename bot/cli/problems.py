"""RunComfy's errors in the command line's words (the Discord side words them in the member's language)."""

from __future__ import annotations

from bot.runcomfy.errors import DownloadTooLargeError, ErrorKind, RateLimitedError, RunComfyError

TOKEN_REFUSED = "RunComfy refused the API token: check RUNCOMFY_API_TOKEN (RunComfy profile > API Keys)."
_SENTENCES = {
    ErrorKind.FAILED: "RunComfy could not handle this request. Please try again later.",
    ErrorKind.AUTH: TOKEN_REFUSED,
    ErrorKind.OUT_OF_CREDIT: "The RunComfy account is out of credit: top up the balance, then try again.",
    ErrorKind.INVALID_INPUT: (
        "RunComfy did not accept these options. Please check the prompt and options and try again."
    ),
    ErrorKind.NOT_FOUND: "RunComfy no longer knows this job: it may have expired.",
    ErrorKind.BUSY: "RunComfy is busy right now. Please try again in a moment.",
    ErrorKind.SERVER: "RunComfy is having trouble right now. Please try again in a few minutes.",
    ErrorKind.UNREACHABLE: "RunComfy could not be reached. Please try again in a few minutes.",
    ErrorKind.OUTCOME_UNKNOWN: (
        "RunComfy did not confirm the request, so it is unclear whether the job started. "
        "It was not sent again, to avoid paying twice. Please check before trying again."
    ),
    ErrorKind.TOO_LARGE: "An image was too large to download.",
    ErrorKind.DOWNLOAD_REFUSED: "An image link pointed somewhere this command does not download from.",
    ErrorKind.INVALID_REQUEST_ID: "That job id is not valid.",
}


def problem(exc: RunComfyError) -> str:
    """What went wrong, as one sentence for the terminal, with the error's numbers."""
    if isinstance(exc, RateLimitedError) and exc.retry_after:
        return f"RunComfy is busy right now. Please try again in {max(1, round(exc.retry_after))} s."
    if isinstance(exc, DownloadTooLargeError):
        size = f" ({exc.size:,} bytes)" if exc.size is not None else ""
        return f"An image{size} was over the {exc.limit:,} byte download limit (DOWNLOAD_MAX_BYTES)."
    return _SENTENCES[exc.kind]
