"""RunComfy's errors in the command line's words: a polite sentence per kind, with the error's numbers."""

from __future__ import annotations

import pytest

from bot.cli.problems import TOKEN_REFUSED, problem
from bot.runcomfy.errors import DownloadTooLargeError, ErrorKind, RateLimitedError
from tests.unit.runcomfy.test_errors import ALL_ERRORS


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_is_a_polite_sentence_naming_no_internals(error):
    text = problem(error)
    assert text and text[0].isupper() and text.endswith(".")
    for internal in ("HTTP", "Traceback", "error_code", "None", "m)", "_"):
        assert internal not in text.replace("RUNCOMFY_API_TOKEN", "").replace("DOWNLOAD_MAX_BYTES", "")  # settings


def test_every_kind_is_worded_differently():
    assert len({problem(error) for error in ALL_ERRORS}) == len(ErrorKind)


def test_a_refused_token_says_which_setting_to_fix():
    assert problem(ALL_ERRORS[1]) == TOKEN_REFUSED and "RUNCOMFY_API_TOKEN" in TOKEN_REFUSED


def test_the_numbers_are_said():
    assert "in 7 s" in problem(RateLimitedError("m", retry_after=7.2))
    assert "in a moment" in problem(RateLimitedError("m"))
    text = problem(DownloadTooLargeError("m", limit=50_000_000, size=73_000_000))
    assert "73,000,000 bytes" in text and "50,000,000 byte" in text and "DOWNLOAD_MAX_BYTES" in text
