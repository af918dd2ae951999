"""Costs and credit end to end: the real bot against the fake Discord and the fake RunComfy."""

from __future__ import annotations

from bot.discord.quota_messages import OUT_OF_CREDIT
from bot.domain.job_state import JobState
from tests.imagine_helpers import eventually, imagine, job_in, refused_privately, start_imagine_bot, usage_of


async def test_a_delivered_set_books_runcomfys_cost(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    fake_runcomfy.cost_per_image = 0.031
    fake_runcomfy.next_job(images=2)
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert (job.price_micros, job.cost_micros, job.cost_estimated) == (30_000, 62_000, False)
    assert job.images_charged == 2


async def test_without_a_cost_the_set_is_estimated_from_the_images_posted(fake_discord, fake_runcomfy, start_bot):
    fake_runcomfy.model_info = fake_runcomfy.model_info | {"base_price_usd": 0.04}
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    await eventually(lambda: bot.prices.price() == 40_000)
    fake_runcomfy.next_job(cost="0.12")  # a string: not believed
    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    job = await job_in(bot, job.id, JobState.DELIVERED)
    assert (job.price_micros, job.cost_micros, job.cost_estimated) == (40_000, 120_000, True)


async def test_out_of_credit_refuses_up_front_until_a_probe_sees_credit_again(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    await eventually(lambda: fake_runcomfy.counts["model"] >= 1)  # the price read at start
    bot.prices.probe_seconds = 0.1
    fake_runcomfy.out_of_credit = True

    _, job = await imagine(fake_discord, bot, {"prompt": "a koi pond", "images": 3})
    job = await job_in(bot, job.id, JobState.FAILED)
    assert await usage_of(bot, fake_discord) == (0, 0)  # the images went back
    assert bot.prices.out_of_credit

    refused = await fake_discord.run_command("imagine", {"prompt": "a heron", "images": 2})
    assert await refused_privately(fake_discord, refused) == OUT_OF_CREDIT
    assert len(fake_runcomfy.submits) == 1  # the refused one never reached RunComfy

    fake_runcomfy.out_of_credit = False
    await eventually(lambda: not bot.prices.out_of_credit)
    _, job = await imagine(fake_discord, bot, {"prompt": "a heron", "images": 2})
    await job_in(bot, job.id, JobState.DELIVERED)
