"""End to end: the language of a server's public messages (status, captions, notes, alerts): the one its admins
chose with `/quota language`, else the server's own, English where the bot lacks it."""

from __future__ import annotations

from bot.domain.job_state import JobState
from tests.e2e.test_imagine_restart import restart
from tests.e2e.test_money_admin import alerts_in
from tests.e2e.test_quota_admin import quota
from tests.imagine_helpers import eventually, image_messages, imagine, job_in, start_imagine_bot, status_says


def captions(fake_discord, job) -> list[str]:
    return [message["content"] for message in image_messages(fake_discord, job)]


async def test_quota_language_es_turns_an_english_servers_public_messages_spanish(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    member = fake_discord.world.member["user"]["id"]

    answer = await quota(fake_discord, "language", {"language": "es"})
    assert answer == "Language of the bot's public messages: the server's own: English → Español (chosen by the admins)"
    assert "Language of public messages: Español (chosen by the admins)" in await quota(fake_discord, "show")

    interaction, job = await imagine(fake_discord, bot, {"prompt": "un faro", "images": 2}, locale="de")
    await status_says(fake_discord, job, "✅ Hecho — 2 imágenes", interaction)
    embed = fake_discord.original_for(interaction)["embeds"][0]
    assert embed["title"] == "Serie de imágenes Seedream" and embed["footer"]["text"] == f"Trabajo {job.id}"
    assert captions(fake_discord, job) == [f"<@{member}> **un faro** — imágenes 1–2 de 2"]

    back = await quota(fake_discord, "language", {"language": "server"})
    assert back == "Language of the bot's public messages: Español (chosen by the admins) → the server's own: English"
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse", "images": 1})
    await status_says(fake_discord, job, "✅ Done — 1 image", interaction)
    assert captions(fake_discord, job) == [f"<@{member}> **a lighthouse** — image 1 of 1"]


async def test_an_italian_servers_captions_and_notes_are_italian(fake_discord, fake_runcomfy, start_bot):
    fake_discord.world.guild_locale = "it"
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(images=2)  # the model made fewer than asked
    interaction, job = await imagine(fake_discord, bot, {"prompt": "un gatto", "images": 3})

    said = await status_says(fake_discord, job, "✅ Fatto — 2 di 3 immagini", interaction)
    assert "RunComfy ha creato 2 delle 3 immagini richieste" in said
    assert "[Vai alle immagini](" in said
    member = fake_discord.world.member["user"]["id"]
    assert captions(fake_discord, job) == [f"<@{member}> **un gatto** — immagini 1–2 di 2"]


async def test_a_server_in_a_language_the_bot_lacks_gets_english(fake_discord, fake_runcomfy, start_bot):
    fake_discord.world.guild_locale = "ja"
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a fox", "images": 1}, locale="fr")

    await status_says(fake_discord, job, "✅ Done — 1 image", interaction)
    assert fake_discord.original_for(interaction)["embeds"][0]["title"] == "Seedream image set"
    assert captions(fake_discord, job)[0].endswith("— image 1 of 1")
    assert "Language of public messages: the server's own: English" in await quota(fake_discord, "show")


async def test_alerts_speak_the_chosen_language_and_the_choice_survives_a_restart(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    channel_id = int(world.channel["id"])
    await quota(fake_discord, "language", {"language": "de"})
    await quota(fake_discord, "alerts", {"channel": world.channel})
    await quota(fake_discord, "budget", {"images": 10})
    _, job = await imagine(fake_discord, bot, {"prompt": "ein Koiteich", "images": 8})
    await job_in(bot, job.id, JobState.DELIVERED)
    await eventually(lambda: alerts_in(fake_discord, channel_id))
    assert alerts_in(fake_discord, channel_id) == ["⚠️ Dieser Server hat heute 80 % seines Budgets verbraucht."]

    restarted = await restart(start_bot, fake_runcomfy, bot)
    assert restarted.languages.of(world.guild_id) == "de"


async def test_a_language_not_offered_is_refused_politely_and_changes_nothing(fake_discord, start_bot):
    bot = await start_bot()

    assert await quota(fake_discord, "language", {"language": "pt"}) == "Pick a language from the list."
    assert bot.languages.chosen(fake_discord.world.guild_id) is None
