"""The Seedream 4.0 sequential request: options, their limits, and the prompt/count rule.

The API wants the prompt to state how many images to make, and that number to match
`sequential_image_generation_options` (the maximum, which sets the price). `build_request` keeps
the two aligned: a count stated in the prompt is used when no count option is given, a prompt
without a count gets one prepended, and a contradiction is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

MAX_PROMPT_CHARS = 600
MIN_IMAGES, MAX_IMAGES = 1, 15
DEFAULT_IMAGES = 3
MAX_SEED = 2_147_483_647


class Invalid(StrEnum):
    """Which rule an option broke."""

    PROMPT_NOT_TEXT = "prompt_not_text"
    PROMPT_EMPTY = "prompt_empty"
    PROMPT_TOO_LONG = "prompt_too_long"  # length, limit
    PROMPT_TOO_LONG_WITH_COUNT = "prompt_too_long_with_count"  # length, room, count: with the count put in front
    PROMPT_COUNT_OUT_OF_RANGE = "prompt_count_out_of_range"  # count, minimum, maximum
    COUNT_MISMATCH = "count_mismatch"  # count (in the prompt), images (the option)
    IMAGES_OUT_OF_RANGE = "images_out_of_range"  # minimum, maximum
    SEED_OUT_OF_RANGE = "seed_out_of_range"  # maximum
    UNKNOWN_ASPECT = "unknown_aspect"  # value, choices
    UNKNOWN_MODE = "unknown_mode"  # value
    PROMPT_BLOCKED = "prompt_blocked"  # matched


class ValidationError(ValueError):
    """An option a user gave is not acceptable. `code` names the rule and `values` its numbers, for the Discord side
    to word in the member's language; the message is the English wording (logs, the command line)."""

    def __init__(self, code: Invalid, message: str, **values: int | str) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


class Aspect(Enum):
    """The eight sizes the model accepts; the value is the API's `image_size` string."""

    SQUARE = "2048:2048 (1:1)"
    LANDSCAPE_4_3 = "2304:1728 (4:3)"
    PORTRAIT_3_4 = "1728:2304 (3:4)"
    LANDSCAPE_16_9 = "2560:1440 (16:9)"
    PORTRAIT_9_16 = "1440:2560 (9:16)"
    LANDSCAPE_3_2 = "2496:1664 (3:2)"
    PORTRAIT_2_3 = "1664:2496 (2:3)"
    ULTRAWIDE_21_9 = "3024:1296 (21:9)"

    @property
    def ratio(self) -> str:
        return self.value.split("(")[1].rstrip(")")

    @property
    def pixels(self) -> tuple[int, int]:
        width, height = self.value.split(" ")[0].split(":")
        return int(width), int(height)

    @property
    def label(self) -> str:
        """A choice name for Discord, like `16:9 landscape (2560×1440)`."""
        width, height = self.pixels
        shape = "square" if width == height else ("landscape" if width > height else "portrait")
        if self is Aspect.ULTRAWIDE_21_9:
            shape = "ultrawide"
        return f"{self.ratio} {shape} ({width}×{height})"

    @classmethod
    def parse(cls, value: str | Aspect) -> Aspect:
        if isinstance(value, Aspect):
            return value
        text = value.strip().lower().replace("x", ":").replace("×", ":")
        for aspect in cls:
            if text in (aspect.value.lower(), aspect.ratio, aspect.value.split(" ")[0]):
                return aspect
        choices = ", ".join(a.ratio for a in cls)
        raise ValidationError(
            Invalid.UNKNOWN_ASPECT, f"Unknown aspect ratio “{value}”. Choose one of: {choices}.", value=value,
            choices=choices,
        )  # fmt: skip


DEFAULT_ASPECT = Aspect.LANDSCAPE_16_9


class Mode(Enum):
    FAST = "fast"
    STANDARD = "standard"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        if isinstance(value, Mode):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValidationError(Invalid.UNKNOWN_MODE, f"Unknown mode “{value}”. Choose fast or standard.",
                                  value=value) from None  # fmt: skip


_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "a single": 1, "single": 1,
}  # fmt: skip
_NOUNS = r"(?:images?|pictures?|pics?|photos?|photographs?|illustrations?|frames?|panels?|shots?|variations?)"
_COUNT_RE = re.compile(
    r"\b(?P<count>\d{1,3}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
    r"\s+(?:(?!(?:of|or|and|to)\b)[a-z-]+\s+){0,2}?" + _NOUNS + r"\b",
    re.IGNORECASE,
)


# Blank-looking letters that are not format characters (category Cf: zero-width spaces, joiners, marks).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def visible(text: str) -> bool:
    """Whether `text` shows anything: not only spaces, zero-width characters, joiners and directional marks."""
    return any(
        not char.isspace() and char not in _BLANK_LETTERS and unicodedata.category(char) not in ("Cf", "Cc")
        for char in text
    )


def stated_count(prompt: str) -> int | None:
    """The number of images a prompt asks for ("5 images", "five photos"), if it states one."""
    match = _COUNT_RE.search(prompt)
    if match is None:
        return None
    word = match.group("count").lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


@dataclass(frozen=True)
class SeedreamRequest:
    """A validated request; `text` is exactly what is sent (it states the count)."""

    prompt: str
    text: str
    images: int
    aspect: Aspect = DEFAULT_ASPECT
    seed: int | None = None
    mode: Mode = Mode.FAST

    def to_input(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "text": self.text,
            "sequential_image_generation_options": self.images,
            "image_size": self.aspect.value,
            "optimize_prompt_options": self.mode.value,
            "sequential_image_generation": "auto",
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def options(self) -> dict[str, Any]:
        """The user's options, for storage; `build_request(**options)` rebuilds the same request."""
        return {
            "prompt": self.prompt,
            "images": self.images,
            "aspect": self.aspect.value,
            "seed": self.seed,
            "mode": self.mode.value,
        }


def _check_images(images: int) -> int:
    if isinstance(images, bool) or not isinstance(images, int) or not MIN_IMAGES <= images <= MAX_IMAGES:
        raise ValidationError(
            Invalid.IMAGES_OUT_OF_RANGE, f"The number of images must be between {MIN_IMAGES} and {MAX_IMAGES}.",
            minimum=MIN_IMAGES, maximum=MAX_IMAGES,
        )  # fmt: skip
    return images


def _check_seed(seed: int | None) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValidationError(
            Invalid.SEED_OUT_OF_RANGE, f"The seed must be a whole number from 0 to {MAX_SEED}.", maximum=MAX_SEED
        )
    return seed


def _count_prefix(images: int) -> str:
    return f"Generate {images} image{'s' if images != 1 else ''}: "


def build_request(
    prompt: str,
    images: int | None = None,
    aspect: str | Aspect = DEFAULT_ASPECT,
    seed: int | None = None,
    mode: str | Mode = Mode.FAST,
) -> SeedreamRequest:
    """Validate a user's options and align the prompt with the image count."""
    if not isinstance(prompt, str):
        raise ValidationError(Invalid.PROMPT_NOT_TEXT, "The prompt must be text.")
    prompt = " ".join(prompt.split())
    if not visible(prompt):
        raise ValidationError(Invalid.PROMPT_EMPTY, "The prompt is empty: describe the images you want.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(
            Invalid.PROMPT_TOO_LONG,
            f"The prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}. Please shorten it.",
            length=len(prompt),
            limit=MAX_PROMPT_CHARS,
        )
    aspect = Aspect.parse(aspect)
    mode = Mode.parse(mode)
    seed = _check_seed(seed)
    in_prompt = stated_count(prompt)

    if in_prompt is not None:
        if not MIN_IMAGES <= in_prompt <= MAX_IMAGES:
            raise ValidationError(
                Invalid.PROMPT_COUNT_OUT_OF_RANGE,
                f"The prompt asks for {in_prompt} images; a set has {MIN_IMAGES} to {MAX_IMAGES} images.",
                count=in_prompt,
                minimum=MIN_IMAGES,
                maximum=MAX_IMAGES,
            )
        if images is not None and _check_images(images) != in_prompt:
            raise ValidationError(
                Invalid.COUNT_MISMATCH,
                f"The prompt asks for {in_prompt} images but the images option says {images}. "
                "Make them match, or leave the images option out.",
                count=in_prompt,
                images=images,
            )
        return SeedreamRequest(prompt, prompt, in_prompt, aspect, seed, mode)

    count = DEFAULT_IMAGES if images is None else _check_images(images)
    text = _count_prefix(count) + prompt
    if len(text) > MAX_PROMPT_CHARS:
        room = MAX_PROMPT_CHARS - len(_count_prefix(count))
        raise ValidationError(
            Invalid.PROMPT_TOO_LONG_WITH_COUNT,
            f"The prompt is {len(prompt)} characters long. Please keep it to {room} characters, "
            f"or say the number of images in it (for example “{count} images of …”).",
            length=len(prompt),
            room=room,
            count=count,
        )
    return SeedreamRequest(prompt, text, count, aspect, seed, mode)
