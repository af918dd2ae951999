"""End to end: the private answers of /usage, /help, /quota, /filter and the command errors are in the member's
language (their Discord's), numbers and dollars in its format, options named as Discord shows them."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.test_member import answer
from tests.e2e.test_quota_admin import quota
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord
from tests.imagine_helpers import eventually, imagine, private_answer, start_imagine_bot


async def said(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **how: Any) -> str:
    """Run a command and return its private answer's text."""
    return (await answer(fake, await fake.run_command(name, options, **how)))["content"]


async def test_usage_speaks_german_and_french_to_members_and_english_to_others(fake_discord, start_bot):
    await start_bot()
    member = fake_discord.world.member

    german = (await said(fake_discord, "usage", by=member, locale="de")).splitlines()
    assert german[:5] == [
        "**Deine Bilder auf diesem Server**",
        "Limit: 30 Bilder pro Tag (Standard des Servers)",
        "Verbraucht heute: 0 Bilder",
        "Von laufenden Serien reserviert: 0 Bilder",
        "Übrig: 30 Bilder",
    ]
    assert re.fullmatch(r"Startet <t:\d+:R> neu \(<t:\d+:f>\)", german[5])
    assert german[6] == "Laufende Serien: 0 (höchstens 2 gleichzeitig)"

    await quota(fake_discord, "budget", {"images": 1500})
    french = await said(fake_discord, "usage", by=member, locale="fr")
    assert "Utilisées aujourd'hui : 0 image" in french  # French: 0 is singular
    assert "Budget du serveur : 0 image sur 1\u202f500 images par jour utilisées aujourd'hui" in french
    assert (await said(fake_discord, "usage", by=member, locale="ja")).startswith("**Your images on this server**")


async def test_help_speaks_the_members_language_and_names_commands_as_their_discord_does(fake_discord, start_bot):
    await start_bot()
    fake_discord.fail("GET", r"/commands$", status=503)  # no command ids: commands are named as text

    text = await said(fake_discord, "help", by=fake_discord.world.admin, locale="fr")

    assert text.startswith("Le **bot Seedream** transforme une description en une série de 1 à 15 images")
    assert "Lancez-en une avec `/imaginer`" in text and "**Annuler** arrête une tâche" in text
    assert "**Commandes**" in text and "**Pour les admins** (Gérer le serveur)" in text
    assert "`/imaginer` — Générer une série d'images avec Seedream 4.0" in text
    assert "`/quota langue` — Choisir la langue des messages publics du bot ici" in text


async def test_quota_answers_an_admin_in_their_language_with_localized_numbers_and_dollars(fake_discord, start_bot):
    await start_bot()
    world = fake_discord.world
    admin, member = world.admin, world.member
    member_id = member["user"]["id"]

    changed = await said(fake_discord, "quota", {"user": member, "images": 1200}, subcommand="set", by=admin,
                         locale="it")  # fmt: skip
    assert changed == (
        f"Limite di <@{member_id}>: 30 immagini al giorno (predefinito del server) → "
        "1.200 immagini al giorno (limite personale)"
    )
    budget = await said(fake_discord, "quota", {"dollars": "1234.5"}, subcommand="budget", by=admin, locale="es-ES")
    assert budget.startswith("Presupuesto del servidor: ninguno → 1.234,50\xa0US$ al día")
    refused = await said(fake_discord, "quota", {"dollars": "lots"}, subcommand="budget", by=admin, locale="de")
    assert refused.startswith("Die Option `dollar` muss ein Dollarbetrag von 0 bis")

    shown = await said(fake_discord, "quota", subcommand="show", by=admin, locale="de")
    assert shown.startswith("**Bildkontingente auf diesem Server**\nStandard: 30 Bilder pro Tag, höchstens 2 laufende")
    assert f"• <@{member_id}>: 1.200 Bilder pro Tag" in shown
    assert "Sprache der öffentlichen Nachrichten: die des Servers: English" in shown


async def test_filter_answers_in_the_admins_language(fake_discord, start_bot):
    await start_bot()
    admin = fake_discord.world.admin

    added = await said(fake_discord, "filter", {"term": "Wolf*"}, subcommand="add", by=admin, locale="de")
    assert added.startswith("Gesperrt: `wolf*`. Beschreibungen, die ihn enthalten, werden abgelehnt")
    bad = await said(fake_discord, "filter", {"term": "*"}, subcommand="add", by=admin, locale="es-419")
    assert bad == (
        "Cada palabra de un término necesita una letra o un dígito: `*` solo coincidiría con cualquier palabra."
    )
    listed = await said(fake_discord, "filter", subcommand="list", by=admin, locale="fr")
    assert listed.startswith("**Bloqués dans les descriptions** (1 sur 100 au plus)\n• `wolf*` (ajouté par <@")
    assert listed.endswith("Descriptions refusées aujourd'hui : 0")
    missing = await said(fake_discord, "filter", {"term": "lamb"}, subcommand="remove", by=admin, locale="it")
    assert missing == (
        "“lamb” non è nell'elenco di questo server, quindi non è cambiato niente. `/filtro elenco` mostra l'elenco."
    )


async def test_command_errors_speak_the_members_language(fake_discord, fake_runcomfy, start_bot):
    await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world

    not_admin = await said(fake_discord, "quota", subcommand="show", by=world.member, locale="de")
    assert not_admin == "Für diesen Befehl brauchst du die Berechtigung „Server verwalten“."
    incomplete = await fake_discord.run_command("imagine", {"images": 2}, locale="es-ES")
    assert await private_answer(fake_discord, incomplete) == (
        "`/imaginar` necesita `descripción`. Elige el comando de la lista de Discord y rellena la opción."
    )


async def test_the_missing_permissions_heads_up_names_them_as_the_members_discord_does(
    fake_discord, fake_runcomfy, start_bot
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    granted = p.MEMBER_PERMISSIONS & ~p.ATTACH_FILES & ~p.EMBED_LINKS

    interaction, _job = await imagine(fake_discord, bot, {"prompt": "un bureau", "images": 1}, app_permissions=granted,
                                      locale="fr")  # fmt: skip

    notes = await eventually(lambda: [m for m in fake_discord.followups_for(interaction) if m["flags"] & p.EPHEMERAL])
    assert notes[0]["content"].startswith(
        "À savoir : il me manque Intégrer des liens, Joindre des fichiers dans ce salon, je ne peux donc publier ici"
    )
