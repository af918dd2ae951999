"""End to end: the bot syncs its commands with their German, Italian, French and Spanish names to Discord, and
answers a member in their language."""

from __future__ import annotations

import re

from tests.e2e.test_startup import COMMAND_SYNC
from tests.imagine_helpers import (
    CANCEL_PREFIX,
    imagine,
    private_answer,
    refused_privately,
    start_imagine_bot,
    status_says,
)


async def test_the_synced_commands_carry_their_localized_names_and_descriptions(fake_discord, start_bot):
    await start_bot()

    (sync,) = fake_discord.find_requests("PUT", COMMAND_SYNC)
    imagine = next(command for command in sync.json if command["name"] == "imagine")
    assert imagine["name_localizations"] == {
        "de": "erzeugen", "it": "immagina", "fr": "imaginer", "es-ES": "imaginar", "es-419": "imaginar",
    }  # fmt: skip
    assert imagine["description_localizations"]["de"] == "Eine Bilderserie mit Seedream 4.0 erzeugen"
    mode = next(option for option in imagine["options"] if option["name"] == "mode")
    assert mode["name_localizations"]["it"] == "modalità"
    assert [choice["name_localizations"]["fr"] for choice in mode["choices"]] == [
        "rapide", "standard (meilleur, plus lent)",
    ]  # fmt: skip
    quota = next(command for command in sync.json if command["name"] == "quota")
    reset = next(option for option in quota["options"] if option["name"] == "reset")
    assert reset["name_localizations"]["de"] == "zurücksetzen"
    assert reset["description_localizations"]["es-ES"] == "Olvida el uso de un miembro en el periodo actual"
    # Discord answers with what it stored; the bot's commands keep their English names as the default.
    stored, _guild = fake_discord.registered_command("imagine")
    assert stored["name_localizations"]["de"] == "erzeugen"


async def test_a_german_member_over_quota_is_refused_in_german_and_others_in_english(
    fake_discord, fake_runcomfy, start_bot
):
    await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=3)

    german = await fake_discord.run_command("imagine", {"prompt": "ein roter Ballon", "images": 4}, locale="de")
    text = await refused_privately(fake_discord, german)
    assert text.startswith("Du hast heute noch 3 Bilder übrig, und diese Serie braucht 4. Bitte wähle höchstens 3.")
    assert re.search(r"Dein Kontingent startet <t:\d+:R> neu\.$", text)

    brazilian = await fake_discord.run_command("imagine", {"prompt": "a red balloon", "images": 4}, locale="pt-BR")
    assert (await refused_privately(fake_discord, brazilian)).startswith("You have 3 images left today")
    assert fake_runcomfy.submits == []


async def test_the_public_status_message_speaks_the_servers_language_not_the_members(
    fake_discord, fake_runcomfy, start_bot
):
    fake_discord.world.guild_locale = "it"
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=1234)
    options = {"prompt": "un faro nella tempesta", "images": 2, "aspect": "1728:2304 (3:4)", "mode": "standard"}
    interaction, job = await imagine(fake_discord, bot, options, locale="de")

    said = await status_says(fake_discord, job, "⏳ In coda su RunComfy — posizione 1.234", interaction)
    embed = fake_discord.original_for(interaction)["embeds"][0]
    assert embed["title"] == "Serie di immagini Seedream"
    assert "Immagini: 2" in said and "Formato: 3:4 verticale (1728×2304)" in said and "Seed: casuale" in said
    assert "Modalità: standard" in said and f"Lavoro {job.id}" in said and "Stato" in said
    assert button_labels(fake_discord.original_for(interaction)) == ["Annulla"]

    fake_runcomfy.complete(job.request_id)
    await status_says(fake_discord, job, "✅ Fatto — 2 immagini", interaction)
    assert button_labels(fake_discord.original_for(interaction)) == ["Ancora"]


def button_labels(message) -> list[str]:
    return [button["label"] for row in message.get("components", []) for button in row["components"]]


async def test_cancel_answers_the_clicker_in_their_language(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=2)
    world = fake_discord.world
    interaction, job = await imagine(fake_discord, bot, {"prompt": "una barca di carta"}, by=world.admin)
    await status_says(fake_discord, job, "position 2", interaction)
    assert button_labels(fake_discord.original_for(interaction)) == ["Cancel"]  # an English server

    others = await fake_discord.click_button(
        CANCEL_PREFIX + job.id, fake_discord.original_for(interaction), by=world.member, locale="es-ES"
    )
    assert await private_answer(fake_discord, others) == (
        "Solo el miembro que inició este trabajo, o alguien con el permiso Gestionar servidor, puede cancelarlo."
    )
    own = await fake_discord.click_button(
        CANCEL_PREFIX + job.id, fake_discord.original_for(interaction), by=world.admin, locale="de"
    )
    assert await private_answer(fake_discord, own) == "🚫 Abgebrochen. Die reservierten Bilder wurden zurückgegeben."


async def test_a_blocked_prompt_is_refused_in_the_members_language(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    await bot.jobs.prompt_filter.add(world.guild_id, "wolf*", added_by=int(world.admin["user"]["id"]))

    interaction = await fake_discord.run_command("imagine", {"prompt": "deux WOLFHOUNDS dans la neige"}, locale="fr")

    refusal = await refused_privately(fake_discord, interaction)
    assert refusal.startswith("Votre description n'a pas été envoyée : ce serveur n'autorise pas « wolfhounds »")
    assert fake_runcomfy.submits == []


async def test_jobs_lists_a_members_sets_in_their_language(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    empty = await fake_discord.run_command("jobs", by=world.member, locale="es-419")
    assert await private_answer(fake_discord, empty) == (
        "Aún no tienes series de imágenes en este servidor. Empieza una con `/imaginar`."
    )
    fake_runcomfy.next_job(manual=True, queue_position=1)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "ein Leuchtturm", "images": 1})
    await status_says(fake_discord, job, "position 1", interaction)

    listed = await fake_discord.run_command("jobs", by=world.member, locale="de")
    lines = (await private_answer(fake_discord, listed)).splitlines()
    original = fake_discord.original_for(listed)

    assert lines[0] == "**Deine letzten Bilderserien**, neueste zuerst"
    assert lines[1].startswith("**1.** ⏳ wartet · 0/1 Bild · “ein Leuchtturm” · [Nachricht](")
    assert button_labels(original) == ["Abbrechen 1"]


async def test_bad_options_are_refused_in_the_members_language_naming_the_options_as_discord_shows_them(
    fake_discord, fake_runcomfy, start_bot
):
    await start_imagine_bot(start_bot, fake_runcomfy)

    mismatch = await fake_discord.run_command("imagine", {"prompt": "5 images of cats", "images": 3}, locale="de")
    assert await private_answer(fake_discord, mismatch) == (
        "Die Option `beschreibung` verlangt 5 Bilder, aber die Option `bilder` sagt 3. Gleiche beide an oder lass "
        "die Option `bilder` weg."
    )
    too_long = await fake_discord.run_command("imagine", {"prompt": "x" * 1200}, locale="fr")
    assert await private_answer(fake_discord, too_long) == (
        "L'option `description` fait 1\u202f200 caractères ; la limite est de 600. Merci de la raccourcir."
    )
    seed = await fake_discord.run_command("imagine", {"prompt": "un gato", "seed": -1}, locale="es-ES")
    said = await private_answer(fake_discord, seed)
    assert said == "La opción `semilla` debe ser un número entero de 0 a 2147483647."
    assert fake_runcomfy.submits == []
    unknown = await fake_discord.run_command("imagine", {"prompt": "a cat", "images": 99}, locale="ja")
    assert await private_answer(fake_discord, unknown) == "`images` must be between 1 and 15."
