"""/imagine through the real bot, on the fake Discord and the fake RunComfy."""

from bot.jobstate import JobState
from tests.imagine_helpers import eventually, start_imagine_bot


async def test_happy_path_four_images(fake_discord, fake_runcomfy, start_bot):
    bot = await start_imagine_bot(start_bot, fake_runcomfy)
    interaction = await fake_discord.run_command("imagine", {"prompt": "a lighthouse in a storm", "images": 4})
    callback = await fake_discord.wait_for_callback(interaction)
    assert callback.json["type"] == 5  # deferred

    async def delivered():
        jobs = await bot.storage.recent_jobs(fake_discord.world.guild_id, fake_discord.world.member["user"]["id"])
        return jobs and jobs[0].state is JobState.DELIVERED and jobs[0]

    job = await eventually(delivered)
    assert job.images_charged == 4
    followups = fake_discord.followups_for(interaction)
    assert [a["filename"] for m in followups for a in m["attachments"]] == [
        f"seedream_{job.id}_{i:02d}.png" for i in range(1, 5)
    ]
    assert len(fake_runcomfy.submits) == 1
