"""/imagine: check and reserve, answer with the status message (or a private refusal), submit."""

from __future__ import annotations

import logging

from discord import app_commands
from discord.ext import commands

from bot.discord import texts
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.job_start import refuse, start_job
from bot.domain.seedream import DEFAULT_ASPECT, MAX_PROMPT_CHARS, MAX_SEED, Aspect, Mode, ValidationError, build_request

log = logging.getLogger(__name__)

ASPECT_CHOICES = [app_commands.Choice(name=aspect.label, value=aspect.value) for aspect in Aspect]
MODE_CHOICES = [
    app_commands.Choice(name="fast", value=Mode.FAST.value),
    app_commands.Choice(name="standard (better, slower)", value=Mode.STANDARD.value),
]


class Imagine(commands.Cog):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Generate a set of images with Seedream 4.0")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What to draw. You can say how many images, e.g. “4 images of a lighthouse in a storm”",
        images="How many images, 1-15 (default: the number in your prompt, else 3)",
        aspect="Aspect ratio and size (default 16:9 landscape)",
        seed="Seed for repeatable results, 0-2147483647 (default: random)",
        mode="fast (default) or standard: better quality, slower",
    )
    @app_commands.choices(aspect=ASPECT_CHOICES, mode=MODE_CHOICES)
    async def imagine(
        self,
        interaction: Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        images: app_commands.Range[int, 1, 15] | None = None,
        aspect: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        mode: str | None = None,
    ) -> None:
        # Discord's client enforces the ranges and choices, but a hand-made payload can send anything.
        try:
            build_request(prompt, images, aspect or DEFAULT_ASPECT, seed, mode or Mode.FAST)
        except ValidationError as exc:
            await refuse(interaction, texts.refusal_text(exc))
            return
        options = {"prompt": prompt, "images": images, "aspect": aspect, "seed": seed, "mode": mode}
        await start_job(interaction, options)


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(Imagine(bot))
