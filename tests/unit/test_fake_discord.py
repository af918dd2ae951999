"""The fake Discord itself: its answers, its recording, its gateway and every fault it can produce.

Raw HTTP/websocket tests pin the wire format later tests rely on; the probe-bot tests prove that unmodified
discord.py parses the fake's payloads and sees its faults the way it would see Discord's.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from bot.discord.bot import SeedreamBot
from tests.fakes import discord_payloads as p
from tests.fakes.discord import FakeDiscord

Step = Callable[[discord.Interaction], Awaitable[Any]]


@pytest.fixture
async def http(fake_discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    """A client for the fake's API: relative paths ("users/@me" go below /api/v10/."""
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession(fake_discord.api_url + "/", headers=headers) as session:
        yield session


def multipart(payload: dict[str, Any], files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for index, (name, data) in enumerate(files):
        form.add_field(f"files[{index}]", data, filename=name, content_type="image/png")
    return form


def interaction_for(fake: FakeDiscord) -> tuple[str, str]:
    """A registered slash command interaction (not dispatched): its callback URL and @original URL."""
    payload = fake.world.interaction(p.APPLICATION_COMMAND, p.command_data(1, "imagine"))
    fake.register_interaction(payload)
    callback = f"interactions/{payload['id']}/{payload['token']}/callback?with_response=1"
    original = f"webhooks/{fake.world.application_id}/{payload['token']}/messages/@original"
    return callback, original


# --- wire format and recording ---------------------------------------------------------------------------------


async def test_unknown_routes_answer_404_and_are_listed(fake_discord, http):
    async with http.get("nowhere/42") as response:
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/json"  # exactly, or discord.py reads text
        assert await response.json() == {"message": "404: Not Found", "code": 0}
    assert fake_discord.unknown_routes == ["GET /nowhere/42"]


async def test_bot_routes_need_the_bot_token(fake_discord, http):
    async with aiohttp.ClientSession() as anonymous, anonymous.get(fake_discord.api_url + "/users/@me") as response:
        assert response.status == 401
    async with http.get("users/@me") as response:
        assert (await response.json())["id"] == str(fake_discord.world.application_id)


async def test_multipart_messages_are_recorded_stored_and_served(fake_discord, http):
    channel_id = fake_discord.world.channel_id
    body = multipart({"content": "two images"}, [("a.png", b"x" * 100), ("b.png", b"y" * 250)])
    async with http.post(f"channels/{channel_id}/messages", data=body) as response:
        created = await response.json()

    recorded = fake_discord.requests[-1]
    assert recorded.route == "POST /channels/{channel_id}/messages"
    assert recorded.json == {"content": "two images"}
    uploads = [(f.field, f.filename, f.size) for f in recorded.files]
    assert uploads == [("files[0]", "a.png", 100), ("files[1]", "b.png", 250)]
    assert fake_discord.messages[channel_id] == [created]
    assert created["author"]["id"] == str(fake_discord.world.application_id)
    assert [(a["filename"], a["size"]) for a in created["attachments"]] == [("a.png", 100), ("b.png", 250)]
    async with http.get(created["attachments"][1]["url"]) as response:
        assert await response.read() == b"y" * 250


async def test_edits_keep_listed_attachments_and_deletes_are_visible(fake_discord, http):
    channel_id = fake_discord.world.channel_id
    body = multipart({"content": "v1"}, [("a.png", b"a"), ("b.png", b"b")])
    async with http.post(f"channels/{channel_id}/messages", data=body) as response:
        created = await response.json()
    url = f"channels/{channel_id}/messages/{created['id']}"
    keep = [{"id": created["attachments"][1]["id"]}]
    async with http.patch(url, json={"content": "v2", "attachments": keep}) as response:
        edited = await response.json()
    assert edited["content"] == "v2" and edited["edited_timestamp"]
    assert [a["filename"] for a in edited["attachments"]] == ["b.png"]
    async with http.delete(url) as response:
        assert response.status == 204
    assert fake_discord.messages[channel_id] == []
    assert fake_discord.deleted_messages[0]["id"] == created["id"]


async def test_an_enforced_nonce_returns_the_first_message_and_reads_back_carry_none(fake_discord, http):
    channel = f"channels/{fake_discord.world.channel_id}/messages"
    sent = {"content": "hello", "nonce": "sd123.1.10", "enforce_nonce": True}
    async with http.post(channel, json=sent) as first, http.post(channel, json=sent) as second:
        assert first.status == second.status == 200
        one, two = await first.json(), await second.json()
    assert one["id"] == two["id"] and one["nonce"] == two["nonce"] == "sd123.1.10"
    async with http.post(channel, json={**sent, "enforce_nonce": False}) as third:
        assert (await third.json())["id"] != one["id"]  # without enforce_nonce Discord makes a new message
    async with http.post(channel, json={**sent, "nonce": "x" * 26}) as too_long:
        assert too_long.status == 400
    fake_discord.nonces.window = 0  # a few minutes later the nonce is free again
    async with http.post(channel, json=sent) as later:
        assert (await later.json())["id"] not in (one["id"], two["id"])
    async with http.get(f"{channel}/{one['id']}") as read_back:
        assert "nonce" not in await read_back.json()


async def test_history_pages_newest_first_with_limit_before_and_after(fake_discord, http):
    channel = f"channels/{fake_discord.world.channel_id}/messages"
    ids = []
    for number in range(5):
        async with http.post(channel, json={"content": str(number)}) as response:
            ids.append((await response.json())["id"])

    async def page(query: str) -> list[str]:
        async with http.get(f"{channel}?{query}") as response:
            return [m["content"] for m in await response.json()]

    assert await page("limit=2") == ["4", "3"]
    assert await page(f"after={ids[0]}&limit=2") == ["2", "1"]  # the oldest after it, newest first
    assert await page(f"before={ids[3]}") == ["2", "1", "0"]


async def test_wait_for_request_sees_earlier_requests_after_a_mark_and_waits_for_later_ones(fake_discord, http):
    await http.get("users/@me")
    mark = fake_discord.mark()
    assert (await fake_discord.wait_for_request(method="GET", path="^/users/@me$")).index == 0

    later = asyncio.create_task(fake_discord.wait_for_request(method="GET", path="^/users/@me$", after=mark))
    await asyncio.sleep(0.01)
    assert not later.done()
    await http.get("users/@me")
    assert (await later).index == mark
    with pytest.raises(AssertionError, match="no request matching"):
        await fake_discord.wait_for_request(method="DELETE", timeout=0.05)


async def test_deferred_reply_then_first_followup_replaces_the_thinking_message(fake_discord, http):
    callback, original_url = interaction_for(fake_discord)
    async with http.post(callback, json={"type": 5, "data": {"flags": 64}}) as response:
        answer = await response.json()
    assert answer["resource"]["type"] == 5
    assert answer["interaction"]["response_message_loading"] is True
    followup_url = original_url.rsplit("/messages/", 1)[0]

    async with http.post(followup_url, json={"content": "first"}) as response:
        first = await response.json()
    async with http.post(followup_url, json={"content": "second"}) as response:
        second = await response.json()

    token = followup_url.rsplit("/", 1)[1]
    assert first["id"] == answer["resource"]["message"]["id"] == fake_discord.original_for(token)["id"]
    assert first["flags"] == p.EPHEMERAL  # loading cleared, still ephemeral
    assert [m["content"] for m in fake_discord.followups_for(token)] == ["second"]
    assert second["id"] != first["id"]


async def test_a_second_callback_or_a_late_one_is_refused(fake_discord, http):
    callback, _ = interaction_for(fake_discord)
    async with http.post(callback, json={"type": 5}) as response:
        assert response.status == 200
    async with http.post(callback, json={"type": 5}) as response:
        assert response.status == 400 and (await response.json())["code"] == 40060

    fake_discord.callback_deadline = 0.02
    late_callback, _ = interaction_for(fake_discord)
    await asyncio.sleep(0.03)
    async with http.post(late_callback, json={"type": 5}) as response:
        assert response.status == 404 and (await response.json())["code"] == 10062


# --- faults ----------------------------------------------------------------------------------------------------


async def test_fault_expired_interaction_token(fake_discord, http):
    fake_discord.expire_tokens_after(0.1)
    callback, original_url = interaction_for(fake_discord)
    await http.post(callback, json={"type": 5})
    async with http.patch(original_url, json={"content": "in time"}) as response:
        assert response.status == 200
    await asyncio.sleep(0.12)
    async with http.patch(original_url, json={"content": "too late"}) as response:
        assert response.status == 401
        assert await response.json() == {"message": "Invalid Webhook Token", "code": 50027}


async def test_fault_rate_limit_with_discord_headers(fake_discord, http):
    rule = fake_discord.rate_limit("POST", r"/channels/\d+/messages$", retry_after=0.25, times=1)
    url = f"channels/{fake_discord.world.channel_id}/messages"
    async with http.post(url, json={"content": "hi"}) as response:
        assert response.status == 429
        assert await response.json() == {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset-After"] == "0.250"
        assert response.headers["X-RateLimit-Bucket"]
    async with http.post(url, json={"content": "hi"}) as response:
        assert response.status == 200
    assert rule.hits == 1


async def test_fault_uploads_over_the_size_limit_or_more_than_ten_files(fake_discord, http):
    fake_discord.upload_limit = 1000
    url = f"channels/{fake_discord.world.channel_id}/messages"
    async with http.post(url, data=multipart({}, [("a.png", b"x" * 600), ("b.png", b"x" * 600)])) as response:
        assert response.status == 413
        assert (await response.json())["code"] == 40005
    eleven = [(f"{i}.png", b"x") for i in range(11)]
    async with http.post(url, data=multipart({}, eleven)) as response:
        assert response.status == 400
        body = await response.json()
        assert body["code"] == 50035 and "files" in body["errors"]
    async with http.post(url, data=multipart({}, eleven[:10])) as response:
        assert response.status == 200
    assert fake_discord.world.filesize_limit == 10 * p.MIB
    fake_discord.set_premium_tier(3)
    assert (fake_discord.world.guild()["premium_tier"], fake_discord.upload_limit) == (3, 100 * p.MIB)


async def test_fault_server_errors_on_message_edits(fake_discord, http):
    fake_discord.fail_message_edits(status=503, times=1)
    async with http.post(f"channels/{fake_discord.world.channel_id}/messages", json={}) as response:
        created = await response.json()
    url = f"channels/{fake_discord.world.channel_id}/messages/{created['id']}"
    async with http.patch(url, json={"content": "edit"}) as response:
        assert response.status == 503
    async with http.patch(url, json={"content": "edit"}) as response:
        assert response.status == 200


async def test_fault_missing_channel_permissions_and_closed_dms(fake_discord, http):
    fake_discord.deny_channel(fake_discord.world.channel_id)
    async with http.post(f"channels/{fake_discord.world.channel_id}/messages", json={}) as response:
        assert response.status == 403
        assert await response.json() == {"message": "Missing Permissions", "code": 50013}

    member_id = int(fake_discord.world.member["user"]["id"])
    fake_discord.close_dms(member_id)
    async with http.post("users/@me/channels", json={"recipient_id": str(member_id)}) as response:
        dm = await response.json()
    async with http.post(f"channels/{dm['id']}/messages", json={"content": "hi"}) as response:
        assert response.status == 403 and (await response.json())["code"] == 50007


# --- gateway ---------------------------------------------------------------------------------------------------


async def test_gateway_handshake_heartbeat_resume_and_dispatch(fake_discord):
    async with aiohttp.ClientSession() as session, session.ws_connect(fake_discord.gateway_url) as ws:
        assert (await ws.receive_json())["op"] == 10
        await ws.send_json({"op": 1, "d": None})
        assert (await ws.receive_json())["op"] == 11
        await ws.send_json({"op": 2, "d": {"token": fake_discord.token, "intents": 1, "properties": {}}})
        ready, guild_create = await ws.receive_json(), await ws.receive_json()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["application"]["id"] == str(fake_discord.world.application_id)
        assert ready["d"]["resume_gateway_url"].startswith("ws://127.0.0.1:")
        assert guild_create["t"] == "GUILD_CREATE"
        guild = guild_create["d"]
        assert {r["name"] for r in guild["roles"]} == {"@everyone", "Admin"}
        assert len(guild["members"]) == 4 and guild["channels"][0]["type"] == 0

        await fake_discord.dispatch("TYPING_START", {"channel_id": "1"})
        event = await ws.receive_json()
        assert (event["t"], event["s"]) == ("TYPING_START", 3)

        await ws.send_json({"op": 6, "d": {"token": fake_discord.token, "session_id": "x", "seq": 3}})
        assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}


async def test_gateway_closes_4004_on_a_wrong_token(fake_discord):
    async with aiohttp.ClientSession() as session, session.ws_connect(fake_discord.gateway_url) as ws:
        await ws.receive_json()
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}})
        await ws.receive()
        assert ws.close_code == 4004


async def test_gateway_shards_get_only_their_guilds_and_a_bad_shard_is_closed_4010(fake_discord):
    count = 2
    holder = (fake_discord.world.guild_id >> 22) % count
    async with aiohttp.ClientSession() as session:
        readies = {}
        for shard in range(count):
            ws = await session.ws_connect(fake_discord.gateway_url)
            await ws.receive_json()
            identify = {"token": fake_discord.token, "intents": 1, "properties": {}, "shard": [shard, count]}
            await ws.send_json({"op": 2, "d": identify})
            readies[shard] = (ws, (await ws.receive_json())["d"])
        assert [readies[n][1]["shard"] for n in range(count)] == [[0, count], [1, count]]
        assert [len(readies[n][1]["guilds"]) for n in range(count)] == [int(n == holder) for n in range(count)]
        assert (await readies[holder][0].receive_json())["t"] == "GUILD_CREATE"
        await fake_discord.dispatch("TYPING_START", {"channel_id": "1", "guild_id": str(fake_discord.world.guild_id)})
        assert (await readies[holder][0].receive_json())["t"] == "TYPING_START"  # on the guild's shard only
        with pytest.raises(TimeoutError):
            await readies[1 - holder][0].receive_json(timeout=0.2)
        assert fake_discord.gateway.identified_shards == [[0, count], [1, count]]
        for ws, _ready in readies.values():
            await ws.close()

        async with session.ws_connect(fake_discord.gateway_url) as ws:
            await ws.receive_json()
            await ws.send_json({"op": 2, "d": {"token": fake_discord.token, "intents": 1, "shard": [2, 2]}})
            await ws.receive()
            assert ws.close_code == 4010


# --- discord.py against the fake, through a probe bot ----------------------------------------------------------


class ProbeBot(SeedreamBot):
    """The real bot plus `/probe step:` (runs a test's coroutine, keeps what it raised) and `/admin quota set`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: dict[str, Step] = {}
        self.errors: list[Exception] = []
        self.seen: list[dict[str, Any]] = []

    async def start_services(self) -> None:
        @self.tree.command(name="probe", description="Run a test step")
        async def probe(interaction: discord.Interaction, step: str) -> None:
            try:
                await self.steps[step](interaction)
            except Exception as exc:
                self.errors.append(exc)

        admin = app_commands.Group(name="admin", description="Admin")
        quota = app_commands.Group(name="quota", description="Quotas", parent=admin)

        @quota.command(name="set", description="Set a quota")
        async def set_quota(
            interaction: discord.Interaction, user: discord.Member, role: discord.Role, images: int, unlimited: bool
        ) -> None:
            self.seen.append({"interaction": interaction, "user": user, "role": role, "values": (images, unlimited)})
            await interaction.response.send_message("ok", ephemeral=True)

        self.tree.add_command(admin)


async def probe(fake: FakeDiscord, bot: ProbeBot, step: Step) -> None:
    """Run `step` inside a real `/probe` interaction and wait until it finished."""
    name = f"step{len(bot.steps)}"
    done = asyncio.Event()

    async def wrapped(interaction: discord.Interaction) -> None:
        try:
            await step(interaction)
        finally:
            done.set()

    bot.steps[name] = wrapped
    await fake.run_command("probe", {"step": name})
    await asyncio.wait_for(done.wait(), 5)


async def test_discordpy_parses_subcommand_groups_options_and_permissions(fake_discord, start_bot):
    bot = await start_bot(bot_factory=ProbeBot)
    world = fake_discord.world

    interaction = await fake_discord.run_command(
        "admin",
        {"user": world.member, "role": world.admin_role, "images": 5, "unlimited": True},
        group="quota",
        subcommand="set",
        by=world.admin,
    )
    await fake_discord.wait_for_callback(interaction)

    seen = bot.seen[0]
    assert seen["user"].id == int(world.member["user"]["id"]) and seen["role"].name == "Admin"
    assert seen["values"] == (5, True)
    assert seen["interaction"].permissions.administrator
    assert seen["interaction"].app_permissions.attach_files
    assert seen["interaction"].filesize_limit == fake_discord.upload_limit
    assert seen["interaction"].user.guild_permissions.administrator
    assert not seen["user"].guild_permissions.administrator


async def test_discordpy_button_click_on_a_stored_message(fake_discord, start_bot):
    bot = await start_bot(bot_factory=ProbeBot)
    clicked: list[discord.Interaction] = []

    class Buttons(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Cancel", custom_id="job:cancel:1")
        async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            clicked.append(interaction)
            await interaction.response.edit_message(content="Cancelled.", view=None)

    bot.add_view(Buttons())

    async def post(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Working…", view=Buttons())

    await probe(fake_discord, bot, post)
    command = next(iter(fake_discord.interactions.values()))
    message = fake_discord.original_for(command)
    assert message["components"][0]["components"][0]["custom_id"] == "job:cancel:1"

    click = await fake_discord.click_button("job:cancel:1", message, by=fake_discord.world.admin)
    callback = await fake_discord.wait_for_callback(click)

    assert callback.json["type"] == 7 and clicked[0].message.id == int(message["id"])
    assert fake_discord.message(int(message["id"]))["content"] == "Cancelled."
    assert fake_discord.message(int(message["id"]))["components"] == []


async def test_discordpy_waits_out_a_429_and_sees_an_expired_token_as_50027(fake_discord, start_bot):
    bot = await start_bot(bot_factory=ProbeBot)
    fake_discord.rate_limit("PATCH", "/messages/@original$", retry_after=0.05)

    async def defer_then_edit(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="done")

    await probe(fake_discord, bot, defer_then_edit)  # rate limited once, then edited
    fake_discord.expire_tokens_after(0)
    await probe(fake_discord, bot, defer_then_edit)  # answered in time, edited too late

    assert [r.status for r in fake_discord.find_requests("PATCH", "/messages/@original$")] == [429, 200, 401]
    assert [(type(e), e.code) for e in bot.errors] == [(discord.HTTPException, 50027)]


async def test_discordpy_sees_upload_limits_and_missing_permissions(fake_discord, start_bot):
    bot = await start_bot(bot_factory=ProbeBot)
    fake_discord.upload_limit = 100
    fake_discord.deny_channel(fake_discord.world.channel_id)

    async def upload_too_much(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send(file=discord.File(io.BytesIO(b"x" * 101), filename="big.png"))

    async def post_in_the_channel(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ok", ephemeral=True)
        await interaction.channel.send("in the channel")

    await probe(fake_discord, bot, upload_too_much)
    await probe(fake_discord, bot, post_in_the_channel)

    errors = [(type(e), e.status, e.code) for e in bot.errors]
    assert errors == [(discord.HTTPException, 413, 40005), (discord.Forbidden, 403, 50013)]


@pytest.mark.parametrize(("strict", "status"), [(False, 200), (True, 404)])
async def test_a_followup_after_the_deferred_response_was_deleted(fake_discord, http, strict, status):
    fake_discord.refuse_followups_after_deleted_deferral = strict
    callback, original_url = interaction_for(fake_discord)
    async with http.post(callback, json={"type": 5}) as response:
        assert response.status == 200
    async with http.delete(original_url) as response:
        assert response.status == 204

    async with http.post(original_url.rsplit("/messages/", 1)[0], json={"content": "x", "flags": 64}) as response:
        assert response.status == status
        if strict:
            assert (await response.json())["code"] == 10008
