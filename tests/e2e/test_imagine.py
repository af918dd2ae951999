"""/imagine through the real bot, on the fake Discord and the fake RunComfy: the happy paths, the status message,
validation of hand-made payloads, quota refusals and a burst of commands."""

from __future__ import annotations

import asyncio

import pytest

from bot.discord import job_start
from bot.domain.job_state import JobState
from tests.fakes import discord_payloads as p
from tests.imagine_helpers import (
    eventually,
    expected_names,
    filenames,
    has_cancel,
    image_messages,
    imagine,
    job_in,
    private_answer,
    refused_privately,
    start_imagine_bot,
    status_says,
    usage_of,
    user_id,
)


@pytest.mark.parametrize(("count", "per_message"), [(1, [1]), (4, [4]), (15, [10, 5])])
async def test_a_set_is_delivered_in_order_named_by_job_and_index_and_charged(
    fake_discord, fake_runcomfy, start_bot, count, per_message
):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a lighthouse in a storm", "images": count})

    callback = await fake_discord.wait_for_callback(interaction)
    assert callback.json["type"] == 4  # the first response is already the public status message
    assert not callback.json["data"].get("flags", 0) & p.EPHEMERAL
    assert f"Job {job.id}" in str(callback.json["data"]["embeds"])
    job = await job_in(bot, job.id, JobState.DELIVERED)
    messages = image_messages(fake_discord, job)
    assert [len(m["attachments"]) for m in messages] == per_message
    assert filenames(messages) == expected_names(job, count)
    assert all(m["webhook_id"] for m in messages)  # followups of the command while its token lives
    assert job.images_charged == count and job.images_delivered == count
    assert await usage_of(bot, fake_discord) == (count, 0)
    assert len(fake_runcomfy.submits) == 1
    assert fake_runcomfy.submits[0].json["sequential_image_generation_options"] == count
    said = await status_says(fake_discord, job, "✅ Done", interaction)
    jump = f"https://discord.com/channels/{fake_discord.world.guild_id}/{messages[0]['channel_id']}/{messages[0]['id']}"
    assert f"[Jump to the images]({jump})" in said
    assert not has_cancel(fake_discord.original_for(interaction))
    assert fake_discord.unknown_routes == []


async def test_the_status_shows_the_options_and_every_state(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(manual=True, queue_position=3)
    prompt = "a watercolour of a fox in a snowy birch forest, " * 12  # 576 characters
    options = {"prompt": prompt, "images": 2, "aspect": "1728:2304 (3:4)", "seed": 42, "mode": "standard"}
    interaction, job = await imagine(fake_discord, bot, options)

    said = await status_says(fake_discord, job, "Queued at RunComfy — position 3", interaction)
    description = fake_discord.original_for(interaction)["embeds"][0]["description"]
    assert len(description) <= 200 and description.endswith("…") and description.startswith("a watercolour")
    assert "Images: 2" in said and "Aspect: 3:4 portrait (1728×2304)" in said and "Seed: 42" in said
    assert "Mode: standard" in said and f"Requested by: <@{user_id(fake_discord.world.member)}>" in said
    assert f"Job {job.id}" in said
    assert has_cancel(fake_discord.original_for(interaction))

    fake_runcomfy.start_job(job.request_id)
    said = await status_says(fake_discord, job, "Generating", interaction)
    running = await job_in(bot, job.id, JobState.RUNNING)
    assert f"<t:{int(running.started_at)}:R>" in said  # elapsed time, counted by every Discord client
    assert not has_cancel(fake_discord.original_for(interaction))

    fake_runcomfy.delays["download"] = 0.3  # long enough to see the delivering state
    fake_runcomfy.complete(job.request_id)
    await status_says(fake_discord, job, "uploading the images", interaction)
    await status_says(fake_discord, job, "✅ Done — 2 images", interaction)


async def test_fewer_images_than_asked_are_charged_and_the_status_says_so(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.next_job(images=2)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "robots playing chess", "images": 5})

    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert (job.images_delivered, job.images_charged) == (2, 2)
    assert await usage_of(bot, fake_discord) == (2, 0)
    assert filenames(image_messages(fake_discord, job)) == expected_names(job, 2)
    said = await status_says(fake_discord, job, "✅ Done — 2 of 5 images", interaction)
    assert "other 3 given back" in said
    assert "RunComfy made 2 of the 5 images asked for" in said


async def test_status_edits_are_coalesced_and_only_made_on_change(fake_discord, fake_runcomfy, start_bot):
    interval = 0.2
    bot = await start_imagine_bot(
        start_bot, fake_runcomfy, status_edit_interval_seconds=interval, poll_max_interval_seconds=0.05
    )
    fake_runcomfy.next_job(queue_seconds=0.8, queue_position=40, run_seconds=0.1)  # a new position every 20 ms
    mark = fake_discord.mark()
    started = asyncio.get_running_loop().time()
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a city of kites", "images": 1})
    await job_in(bot, job.id, JobState.DELIVERED)
    await status_says(fake_discord, job, "✅ Done", interaction)
    elapsed = asyncio.get_running_loop().time() - started

    edits = fake_discord.find_requests("PATCH", r"^/webhooks/", after=mark)
    polls = fake_runcomfy.counts["status"]
    assert polls >= 2 * len(edits)  # the position changed at almost every poll...
    assert len(edits) <= elapsed / interval + 3  # ...yet the reply was edited at most once per interval

    fake_runcomfy.next_job(manual=True, queue_position=5)
    interaction, job = await imagine(fake_discord, bot, {"prompt": "a quiet pond", "images": 1})
    await status_says(fake_discord, job, "position 5", interaction)
    mark, polls = fake_discord.mark(), fake_runcomfy.counts["status"]
    await eventually(lambda: fake_runcomfy.counts["status"] >= polls + 4)
    assert fake_discord.find_requests("PATCH", after=mark) == []  # polled, nothing changed: no edit
    edits = fake_discord.find_requests("PATCH", rf"^/webhooks/\d+/{interaction.token}/")
    assert len(edits) == 1  # the first status is the response itself (submitted looks the same), then the queue


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prompt": "a cat", "images": 0}, "between 1 and 15"),
        ({"prompt": "a cat", "images": 99}, "between 1 and 15"),
        ({"prompt": "a cat", "seed": -1}, "The `seed` must be a whole number from 0 to 2147483647."),
        ({"prompt": "a cat", "aspect": "5:7"}, "Unknown `aspect` “5:7”. Choose one of: 1:1, 4:3"),
        ({"prompt": "a cat", "mode": "turbo"}, "Unknown `mode` “turbo”. Choose fast or standard (better, slower)."),
        ({"prompt": "x" * 700}, "the limit is 600"),
        ({"prompt": "20 images of cats"}, "a set has 1 to 15 images"),
        ({"prompt": "\u200b\u200d \u200e\u2066"}, "The `prompt` is empty"),
        ({"images": 2}, "`/imagine` needs `prompt`"),
    ],
)
async def test_hand_made_payloads_are_validated_again(fake_discord, fake_runcomfy, start_bot, options, expected):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction = await fake_discord.run_command("imagine", options)

    callback = await fake_discord.wait_for_callback(interaction)
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] & p.EPHEMERAL
    assert expected in await private_answer(fake_discord, interaction)
    assert fake_runcomfy.submits == []
    assert await bot.storage.recent_jobs(fake_discord.world.guild_id, user_id(fake_discord.world.member)) == []


async def test_over_quota_is_refused_privately_and_nothing_is_submitted(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=3)
    interaction = await fake_discord.run_command("imagine", {"prompt": "a red balloon", "images": 4})

    text = await refused_privately(fake_discord, interaction)
    assert "3 images left" in text and "needs 4" in text
    assert fake_runcomfy.submits == []
    assert await usage_of(bot, fake_discord) == (0, 0)


async def test_a_burst_of_commands_never_overspends(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=10, quota_max_concurrent_jobs=50)
    interactions = await asyncio.gather(
        *(fake_discord.run_command("imagine", {"prompt": f"tile {n}", "images": 3}) for n in range(20))
    )

    for interaction in interactions:
        assert (await fake_discord.wait_for_callback(interaction)).json["type"] == 4

    async def settled():
        jobs = await bot.storage.recent_jobs(fake_discord.world.guild_id, user_id(fake_discord.world.member), 50)
        return jobs if len(jobs) == 3 and all(job.state is JobState.DELIVERED for job in jobs) else None

    jobs = await eventually(settled)
    assert len(fake_runcomfy.submits) == 3
    assert sum(job.images_charged for job in jobs) == 9
    assert await usage_of(bot, fake_discord) == (9, 0)
    refused = [i for i in interactions if fake_discord.original_for(i)["flags"] & p.EPHEMERAL]
    answered = [await refused_privately(fake_discord, i) for i in refused]
    assert len(answered) == 17 and all("images" in text for text in answered)


async def test_a_slow_check_defers_publicly_in_time(fake_discord, fake_runcomfy, start_bot, monkeypatch):
    monkeypatch.setattr(job_start, "CHECK_BUDGET", 0.0)  # checking "takes longer" than the budget
    bot = await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=3)

    interaction, job = await imagine(fake_discord, bot, {"prompt": "a slow snail", "images": 2})
    assert (await fake_discord.wait_for_callback(interaction)).json["type"] == 5  # "thinking…"
    await status_says(fake_discord, job, "✅ Done — 2 images", interaction)

    refused = await fake_discord.run_command("imagine", {"prompt": "a slow snail", "images": 2})
    assert (await fake_discord.wait_for_callback(refused)).json["type"] == 5
    assert "1 image left" in await private_answer(fake_discord, refused)
    assert fake_discord.original_for(refused) is None  # the public "thinking…" was removed


async def test_a_refusal_reaches_the_member_where_followups_after_a_deleted_deferral_fail(
    fake_discord, fake_runcomfy, start_bot
):
    fake_discord.refuse_followups_after_deleted_deferral = True
    await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=1)

    interaction = await fake_discord.run_command("imagine", {"prompt": "two moons", "images": 2})

    assert "1 image left" in await refused_privately(fake_discord, interaction)


async def test_a_slow_refusal_that_cannot_be_shown_is_logged_in_one_line(
    fake_discord, fake_runcomfy, start_bot, monkeypatch, caplog
):
    monkeypatch.setattr(job_start, "CHECK_BUDGET", 0.0)
    fake_discord.refuse_followups_after_deleted_deferral = True
    bot = await start_imagine_bot(start_bot, fake_runcomfy, quota_default_images=1)

    await fake_discord.run_command("imagine", {"prompt": "two moons", "images": 2})

    await eventually(lambda: "a refusal could not be shown" in caplog.text)
    assert "Traceback" not in caplog.text and "failed in guild" not in caplog.text
    assert await usage_of(bot, fake_discord) == (0, 0)
