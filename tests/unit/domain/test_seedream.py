"""The Seedream request rules: options and their limits, and the prompt/count rule."""

from __future__ import annotations

import pytest

from bot.domain.seedream import (
    DEFAULT_ASPECT,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    Aspect,
    Mode,
    SeedreamRequest,
    ValidationError,
    build_request,
    stated_count,
)

SCHEMA_SIZES = {
    "2048:2048 (1:1)", "2304:1728 (4:3)", "1728:2304 (3:4)", "2560:1440 (16:9)",
    "1440:2560 (9:16)", "2496:1664 (3:2)", "1664:2496 (2:3)", "3024:1296 (21:9)",
}  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "count"),
    [
        ("5 images of a fox", 5),
        ("five images of a fox", 5),
        ("Five Photos of a fox", 5),
        ("FIFTEEN PANELS telling a story", 15),
        ("a single image of a fox", 1),
        ("one picture of a fox", 1),
        ("3 cute cat pictures", 3),
        ("12 storyboard frames", 12),
        ("make 2 variations", 2),
        ("a fox", None),
        ("a 15-panel comic", None),
        ("the year 2024 in a picture", None),
        ("3D render of a fox", None),
        ("someone holding images", None),
        ("a 4k photo", None),
    ],
)
def test_stated_count(prompt, count):
    assert stated_count(prompt) == count


@pytest.mark.parametrize(
    ("prompt", "count"),
    [("a comic where one of the panels shows a cat", None), ("one or two images of a cat", 2), ("twenty photos", 20)],
)
def test_stated_count_ignores_counts_that_do_not_count(prompt, count):
    assert stated_count(prompt) == count


def test_count_in_prompt_is_used_and_the_prompt_kept_as_is():
    request = build_request("four pictures of the same lighthouse in each season")
    assert (request.images, request.text) == (4, "four pictures of the same lighthouse in each season")


def test_count_in_prompt_matching_the_option_is_accepted():
    assert build_request("6 images of a robot", 6).images == 6


def test_count_in_prompt_contradicting_the_option_is_refused():
    with pytest.raises(ValidationError, match=r"asks for 5 images but the images option says 3"):
        build_request("5 images of a robot", 3)


@pytest.mark.parametrize("prompt", ["20 images of a robot", "0 images of a robot", "100 photos of a robot"])
def test_count_in_prompt_out_of_bounds_is_refused(prompt):
    with pytest.raises(ValidationError, match="1 to 15"):
        build_request(prompt)


def test_prompt_without_count_gets_a_prefix_with_the_default_count():
    request = build_request("a lighthouse at dusk")
    assert (request.images, request.text, request.prompt) == (
        3,
        "Generate 3 images: a lighthouse at dusk",
        "a lighthouse at dusk",
    )


def test_prefix_is_singular_for_one_image():
    assert build_request("a lighthouse", 1).text == "Generate 1 image: a lighthouse"


@pytest.mark.parametrize("images", [1, 9, 10, 15])
def test_prefix_fits_within_600_characters(images):
    room = MAX_PROMPT_CHARS - len(f"Generate {images} image{'s' if images != 1 else ''}: ")
    request = build_request("y" * room, images)
    assert len(request.text) == MAX_PROMPT_CHARS
    with pytest.raises(ValidationError, match=f"keep it to {room} characters"):
        build_request("y" * (room + 1), images)


def test_prompt_stating_its_count_may_use_all_600_characters():
    prompt = "3 images of " + "z" * (MAX_PROMPT_CHARS - 12)
    assert build_request(prompt).text == prompt
    with pytest.raises(ValidationError, match="limit is 600"):
        build_request(prompt + "z")


def test_whitespace_is_collapsed():
    assert build_request("  a   lighthouse\n\tat dusk ").prompt == "a lighthouse at dusk"


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   ",
        "\n\t",
        "\u200b\u200b",  # zero-width spaces
        "\u200c \u200d\u2060",  # joiners
        "\u200e\u200f\u202a\u202e\u2066\u2069",  # directional marks and isolates
        "\ufeff\u00ad\u3164\u2800",  # byte order mark, soft hyphen, Hangul filler, braille blank
    ],
)
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(ValidationError, match="empty"):
        build_request(prompt)


def test_a_visible_prompt_with_invisible_characters_is_kept_as_typed():
    assert build_request("\u200ba fox 👩\u200d🚀").prompt == "\u200ba fox 👩\u200d🚀"  # the joiner makes one emoji


def test_prompt_must_be_text():
    with pytest.raises(ValidationError, match="text"):
        build_request(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("images", [1, 15])
def test_image_bounds_accepted(images):
    assert build_request("a fox", images).images == images


@pytest.mark.parametrize("images", [0, 16, -1, True, 3.0, "3"])
def test_image_bounds_refused(images):
    with pytest.raises(ValidationError, match="between 1 and 15"):
        build_request("a fox", images)


@pytest.mark.parametrize(
    ("given", "aspect"),
    [
        ("16:9", Aspect.LANDSCAPE_16_9),
        (" 21:9 ", Aspect.ULTRAWIDE_21_9),
        ("16x9", Aspect.LANDSCAPE_16_9),
        ("2560x1440", Aspect.LANDSCAPE_16_9),
        ("2560×1440", Aspect.LANDSCAPE_16_9),
        ("1440:2560 (9:16)", Aspect.PORTRAIT_9_16),
        ("1:1", Aspect.SQUARE),
        (Aspect.PORTRAIT_2_3, Aspect.PORTRAIT_2_3),
    ],
)
def test_aspect_parse(given, aspect):
    assert Aspect.parse(given) is aspect
    assert build_request("a fox", aspect=given).aspect is aspect


@pytest.mark.parametrize("given", ["5:4", "wide", "", "16:10"])
def test_aspect_refused_with_the_choices(given):
    with pytest.raises(ValidationError, match="Choose one of: 1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3, 21:9"):
        build_request("a fox", aspect=given)


def test_aspects_are_exactly_the_schema_sizes():
    assert {a.value for a in Aspect} == SCHEMA_SIZES
    assert DEFAULT_ASPECT.value == "2560:1440 (16:9)"


def test_aspect_details():
    assert Aspect.ULTRAWIDE_21_9.pixels == (3024, 1296)
    assert Aspect.PORTRAIT_3_4.ratio == "3:4"
    assert Aspect.SQUARE.label == "1:1 square (2048×2048)"
    assert Aspect.ULTRAWIDE_21_9.label == "21:9 ultrawide (3024×1296)"
    assert Aspect.PORTRAIT_9_16.label == "9:16 portrait (1440×2560)"


@pytest.mark.parametrize(
    ("given", "mode"), [("fast", Mode.FAST), (" STANDARD ", Mode.STANDARD), (Mode.FAST, Mode.FAST)]
)
def test_mode_parse(given, mode):
    assert build_request("a fox", mode=given).mode is mode


def test_mode_refused():
    with pytest.raises(ValidationError, match="fast or standard"):
        build_request("a fox", mode="turbo")


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED])
def test_seed_accepted(seed):
    assert build_request("a fox", seed=seed).to_input()["seed"] == seed


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, True, 1.5, "7"])
def test_seed_refused(seed):
    with pytest.raises(ValidationError, match="seed"):
        build_request("a fox", seed=seed)


def test_to_input_follows_the_schema():
    payload = build_request("a fox", 2, aspect="3:2", seed=9, mode="standard").to_input()
    assert payload == {
        "text": "Generate 2 images: a fox",
        "sequential_image_generation_options": 2,
        "image_size": "2496:1664 (3:2)",
        "optimize_prompt_options": "standard",
        "sequential_image_generation": "auto",
        "seed": 9,
    }


def test_to_input_defaults_and_no_seed():
    payload = build_request("a fox").to_input()
    assert "seed" not in payload
    assert payload["image_size"] == "2560:1440 (16:9)" and payload["optimize_prompt_options"] == "fast"


@pytest.mark.parametrize(
    "request_",
    [
        build_request("a fox", 7, aspect="9:16", seed=3, mode="standard"),
        build_request("two photos of a fox"),
        build_request("a single image of a fox", 1, aspect="21:9"),
    ],
)
def test_options_rebuild_the_same_request(request_):
    assert isinstance(request_, SeedreamRequest)
    assert build_request(**request_.options()) == request_
