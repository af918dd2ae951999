"""Dollar budgets, alerts and spend in /quota, through the real bot on the fake Discord and fake RunComfy."""

from __future__ import annotations

from bot.domain.job_state import JobState
from tests.e2e.test_quota_admin import quota
from tests.imagine_helpers import (
    eventually,
    imagine,
    job_in,
    refused_privately,
    start_imagine_bot,
)


def alerts_in(fake, channel_id) -> list[str]:
    """Messages the bot posted in the channel itself (not interaction answers or image sets)."""
    posted = [r for r in fake.requests if r.method == "POST" and r.path == f"/channels/{channel_id}/messages"]
    texts = [r.json.get("content") for r in posted if isinstance(r.json, dict)]
    return [text for text in texts if text and text.startswith(("⚠️", "✅"))]


async def test_a_dollar_budget_is_set_shown_and_enforced_in_images(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    await eventually(lambda: fake_runcomfy.counts["model"] >= 1)
    text = await quota(fake_discord, "budget", {"dollars": "$0.15", "period": "week"})
    assert text.startswith("Server budget: none → $0.15 per week")
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    await job_in(bot, job.id, JobState.DELIVERED)

    refused = await fake_discord.run_command("imagine", {"prompt": "a heron", "images": 3})
    message = await refused_privately(fake_discord, refused)
    assert "2 images left" in message and "$" not in message

    shown = await quota(fake_discord, "show")
    assert "Server budget: $0.15 per week; 3 images used or reserved this week" in shown
    assert "Spend this week: $0.09 for 3 images" in shown
    assert "Dollar budget used this week: 60 % of $0.15" in shown
    assert f"1. <@{fake_discord.world.member['user']['id']}>: $0.09, 3 images" in shown

    both = await quota(fake_discord, "budget", {"images": 100})
    assert both.startswith("Server budget: $0.15 per week → 100 images and $0.15 per week")
    assert await quota(fake_discord, "budget-remove") == "Server budget: 100 images and $0.15 per week → none"


async def test_bad_dollar_amounts_are_refused_politely(fake_discord, start_bot):
    bot = await start_bot()
    for bad in ("lots", "-5", "1e40"):
        text = await quota(fake_discord, "budget", {"dollars": bad})
        assert text.startswith("`dollars` must be"), text
    assert (await bot.quotas.guild_settings(fake_discord.world.guild_id)).budget_usd_micros is None


async def test_alerts_at_80_and_100_percent_once_each(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    channel_id = int(world.channel["id"])
    text = await quota(fake_discord, "alerts", {"channel": world.channel})
    assert text.startswith(f"Alert channel: none → <#{channel_id}>")
    await quota(fake_discord, "budget", {"images": 10})
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 8})
    await job_in(bot, job.id, JobState.DELIVERED)
    await eventually(lambda: alerts_in(fake_discord, channel_id))
    assert alerts_in(fake_discord, channel_id) == ["⚠️ This server has used 80 % of its budget today."]
    _, job = await imagine(fake_discord, bot, {"prompt": "a heron", "images": 2})
    await job_in(bot, job.id, JobState.DELIVERED)
    await eventually(lambda: len(alerts_in(fake_discord, channel_id)) == 2)
    assert "used up" in alerts_in(fake_discord, channel_id)[1]


async def test_out_of_credit_and_back_are_posted_to_alert_channels(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    world = fake_discord.world
    channel_id = int(world.channel["id"])
    await quota(fake_discord, "alerts", {"channel": world.channel})
    await eventually(lambda: fake_runcomfy.counts["model"] >= 1)
    bot.prices.probe_seconds = 0.1
    fake_runcomfy.out_of_credit = True
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    await job_in(bot, job.id, JobState.FAILED)
    await eventually(lambda: any("out of credit" in text for text in alerts_in(fake_discord, channel_id)))
    fake_runcomfy.out_of_credit = False
    await eventually(lambda: any("accepts the bot's account again" in t for t in alerts_in(fake_discord, channel_id)))


async def test_an_unknown_outcome_is_posted(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    channel_id = int(fake_discord.world.channel["id"])
    await quota(fake_discord, "alerts", {"channel": fake_discord.world.channel})
    fake_runcomfy.fail_next("submit", 503)
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    job = await job_in(bot, job.id, JobState.UNKNOWN)
    await eventually(lambda: any("unknown outcome" in text for text in alerts_in(fake_discord, channel_id)))
    assert (job.cost_micros, job.cost_estimated) == (90_000, True)  # it may have been billed
