"""The prompt filter: term syntax, whole-word wildcard matching, its storage, and its place in JobService.create."""

from __future__ import annotations

import fnmatch
import itertools
import random

import pytest

from bot.discord.texts import refusal_text
from bot.domain.seedream import ValidationError
from bot.engine import prompt_filter
from bot.engine.jobs import JobService
from bot.engine.prompt_filter import MAX_TERMS, PromptBlocked, PromptFilter, TermError, find_blocked, parse_term
from tests.fixtures.postgres import BACKENDS
from tests.fixtures.storage import CHANNEL_ID, GUILD_ID, USER_ID

OTHER_GUILD, OTHER_USER = GUILD_ID + 1, USER_ID + 1


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("gore", "gore"),
        ("  Gore  ", "gore"),
        ("Self-Harm", "self harm"),
        ("self   harm", "self harm"),
        ("CAFÉ", "cafe"),
        ("cat**", "cat*"),
        ("don't", "don t"),
        ("*cat", "*cat"),
        ("c*t*s", "c*t*s"),
    ],
)
def test_terms_get_one_canonical_form(typed, canonical):
    assert parse_term(typed) == canonical


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("*", "letter or digit"),
        ("nude *", "letter or digit"),
        ("a", "at least 2"),
        ("a*", "at least 2"),
        ("(a+)+$", "can only contain"),
        ("x{1000}", "can only contain"),
        ("a.*b", "can only contain"),
        (r"\d+", "can only contain"),
        ("[a-z]", "can only contain"),
        ("a|b", "can only contain"),
        ("x" * 61, "at most 60 characters"),
        ("one two three four five six", "at most 5 words"),
    ],
)
def test_unusable_terms_are_refused_with_a_reason(typed, reason):
    with pytest.raises(TermError, match=reason.replace("*", r"\*")):
        parse_term(typed)


@pytest.mark.parametrize(
    ("term", "prompt", "matched"),
    [
        ("cat", "A CAT on a mat", "cat"),
        ("cat", "concatenate the cats", None),  # whole words only
        ("cat*", "two Cats and a catapult", "cats"),
        ("*cat", "a bobcat at night", "bobcat"),
        ("c*t", "a cart, a cartoon", "cart"),
        ("c*t", "a cartoon", None),
        ("self harm", "no self-harm please", "self harm"),
        ("self harm", "SELF    HARM", "self harm"),
        ("self harm", "self and harm", None),
        ("cafe", "un Café crème", "cafe"),
        ("don t", "don't stop", "don t"),
        ("gore", "gorgeous gorge", None),
    ],
)
def test_terms_match_whole_words_whatever_the_case_and_accents(term, prompt, matched):
    assert find_blocked(prompt, [term]) == matched


def test_the_first_matching_term_is_reported():
    assert find_blocked("a red fox and a grey wolf", ["bear", "wolf", "fox"]) == "wolf"
    assert find_blocked("nothing here", ["bear", "wolf"]) is None
    assert find_blocked("", ["wolf"]) is None


def test_wildcards_match_exactly_like_shell_patterns_on_words():
    rng = random.Random(7)
    words = ["".join(letters) for n in range(6) for letters in itertools.product("ab", repeat=n)]
    for _ in range(400):
        pattern = "".join(rng.choice("ab*") for _ in range(rng.randint(1, 6)))
        for word in words:
            expected = fnmatch.fnmatchcase(word, pattern)
            assert prompt_filter._word_matches(pattern, word) is expected, (pattern, word)


def test_patterns_that_would_backtrack_in_a_regex_are_answered():
    # Many wildcards against a long word that almost matches: linear work here, however it is written.
    term = parse_term("a*a*a*a*a*a*a*b")
    assert find_blocked("a" * 600, [term]) is None
    assert find_blocked("a" * 599 + "b", [term]) == "a" * 599 + "b"


async def test_terms_are_stored_per_server_and_listed_in_order(storage):
    prompt_filter = PromptFilter(storage)

    assert await prompt_filter.add(GUILD_ID, "Wolf", added_by=USER_ID) == ("wolf", True)
    assert await prompt_filter.add(GUILD_ID, "WOLF", added_by=OTHER_USER) == ("wolf", False)
    assert await prompt_filter.add(GUILD_ID, "bear*", added_by=OTHER_USER) == ("bear*", True)

    terms = await prompt_filter.terms(GUILD_ID)
    assert [(t.term, t.added_by, t.added_at) for t in terms] == [
        ("bear*", OTHER_USER, storage.clock()),
        ("wolf", USER_ID, storage.clock()),
    ]
    assert await prompt_filter.terms(OTHER_GUILD) == []
    assert await prompt_filter.remove(GUILD_ID, "  wolf ") == ("wolf", True)
    assert await prompt_filter.remove(GUILD_ID, "wolf") == ("wolf", False)
    assert [t.term for t in await prompt_filter.terms(GUILD_ID)] == ["bear*"]


async def test_a_server_can_block_at_most_max_terms(storage):
    prompt_filter = PromptFilter(storage)
    for n in range(MAX_TERMS):
        await prompt_filter.add(GUILD_ID, f"word{n}", added_by=USER_ID)

    with pytest.raises(TermError, match="already blocks"):
        await prompt_filter.add(GUILD_ID, "one more", added_by=USER_ID)
    assert await prompt_filter.add(GUILD_ID, "word7", added_by=USER_ID) == ("word7", False)
    assert await prompt_filter.add(OTHER_GUILD, "one more", added_by=USER_ID) == ("one more", True)
    assert len(await prompt_filter.terms(GUILD_ID)) == MAX_TERMS


async def test_check_refuses_blocked_prompts_and_counts_them_per_user_and_day(storage, storage_clock):
    prompt_filter = PromptFilter(storage)
    await prompt_filter.add(GUILD_ID, "wolf*", added_by=USER_ID)

    await prompt_filter.check(GUILD_ID, USER_ID, "a red fox")  # allowed: nothing raised
    await prompt_filter.check(OTHER_GUILD, USER_ID, "a grey wolf")  # another server's list
    with pytest.raises(PromptBlocked) as blocked:
        await prompt_filter.check(GUILD_ID, USER_ID, "two grey Wolfhounds")
    assert blocked.value.matched == "wolfhounds"
    text = refusal_text(blocked.value)
    assert "“wolfhounds”" in text and "Nothing was taken from your quota" in text
    assert isinstance(blocked.value, ValidationError)
    storage_clock.advance(86_400)
    with pytest.raises(PromptBlocked):
        await prompt_filter.check(GUILD_ID, OTHER_USER, "wolf")

    today = storage_clock()
    yesterday = today - 86_400
    assert await prompt_filter.blocked_count(GUILD_ID, since=yesterday) == 2
    assert await prompt_filter.blocked_count(GUILD_ID, since=today) == 1
    assert await prompt_filter.blocked_count(GUILD_ID, since=yesterday, user_id=USER_ID) == 1
    assert await prompt_filter.blocked_count(GUILD_ID, since=today, user_id=USER_ID) == 0
    assert await prompt_filter.blocked_count(OTHER_GUILD, since=yesterday) == 0


async def test_job_service_checks_the_filter_before_reserving_any_image(storage, quotas):
    jobs = JobService(storage, quotas, runcomfy=None, tracker=None)  # create() needs neither
    await jobs.prompt_filter.add(GUILD_ID, "wolf", added_by=USER_ID)
    common = {"guild_id": GUILD_ID, "channel_id": CHANNEL_ID, "user_id": USER_ID, "role_ids": []}

    with pytest.raises(PromptBlocked):
        await jobs.create(**common, prompt="a grey wolf", images=4)

    assert await storage.fetchall("SELECT id FROM jobs") == []
    usage = await quotas.usage(GUILD_ID, USER_ID)
    assert (usage.used, usage.reserved) == (0, 0)
    job, request = await jobs.create(**common, prompt="a red fox", images=4)
    assert job.images_reserved == request.images == 4
