"""Learned run times: priors, learning per mode and size, kept in the database across restarts."""

from __future__ import annotations

import pytest

from bot.store.run_times import PRIOR_SPREAD, SAVE_INTERVAL, SAVED_RUNS, RunTimes

FAST_16_9 = {"mode": "fast", "aspect": "2560:1440 (16:9)"}
FAST_1_1 = {"mode": "fast", "aspect": "2048:2048 (1:1)"}
STANDARD_16_9 = {"mode": "standard", "aspect": "2560:1440 (16:9)"}


def test_before_anything_is_learned_the_prior_is_used():
    times = RunTimes()
    assert times.expect(FAST_16_9, 4) == (8.0, PRIOR_SPREAD)
    assert times.expect(STANDARD_16_9, 4) == (13.0, PRIOR_SPREAD)  # standard mode works on the prompt first


async def test_learning_moves_the_estimate_towards_the_runs_of_that_mode_and_size_only():
    times = RunTimes()
    for _ in range(20):
        await times.learn(FAST_16_9, 4, 12.0)  # 3 s per image
    expected, spread = times.expect(FAST_16_9, 2)
    assert expected == pytest.approx(6.0, abs=0.05)
    assert spread < 0.05  # the runs were all alike
    assert times.expect(FAST_1_1, 2)[0] == 4.0
    assert times.expect(STANDARD_16_9, 2)[0] == 9.0


async def test_runs_that_vary_widen_the_spread():
    times = RunTimes()
    for seconds in [5.6, 10.4] * 10:  # 8 s ± 30 %
        await times.learn(FAST_16_9, 4, seconds)
    assert times.expect(FAST_16_9, 4)[1] > 0.2


@pytest.mark.parametrize("seconds", [-3.0, 0.0, float("nan"), float("inf"), 10_000.0])
async def test_unbelievable_runs_are_not_learned(seconds):
    times = RunTimes()
    assert await times.learn(FAST_16_9, 4, seconds) is None
    assert times.expect(FAST_16_9, 4) == (8.0, PRIOR_SPREAD)


async def test_learned_times_survive_a_restart_through_the_database(storage):
    times = RunTimes(storage)
    await times.learn(FAST_16_9, 2, 10.0)
    learned = times.expect(FAST_16_9, 2)

    restarted = RunTimes(storage)
    await restarted.load(FAST_16_9)
    assert restarted.expect(FAST_16_9, 2) == pytest.approx(learned)
    assert restarted.expect(FAST_1_1, 2) == (4.0, PRIOR_SPREAD)


async def test_an_unreadable_stored_value_falls_back_to_the_prior(storage):
    await storage.set_meta("run_time:fast:2560:1440 (16:9)", "{not json")
    times = RunTimes(storage)
    await times.load(FAST_16_9)
    assert times.expect(FAST_16_9, 4) == (8.0, PRIOR_SPREAD)


async def test_loading_reads_the_database_once_per_kind_of_job(storage):
    reads = []
    real = storage.get_meta

    async def counting(key):
        reads.append(key)
        return await real(key)

    storage.get_meta = counting
    times = RunTimes(storage)
    for _ in range(3):
        await times.load(FAST_16_9)
    assert len(reads) == 1


async def test_after_its_first_runs_a_kind_is_written_at_most_every_save_interval(storage):
    writes = []
    real = storage.set_meta

    async def counting(key, value):
        writes.append(value)
        await real(key, value)

    storage.set_meta = counting
    now = [0.0]
    times = RunTimes(storage, clock=lambda: now[0])
    for _ in range(SAVED_RUNS):
        await times.learn(FAST_16_9, 2, 10.0)
    assert len(writes) == SAVED_RUNS
    for _ in range(20):  # many finished jobs within a few seconds: kept in memory only
        now[0] += 0.5
        await times.learn(FAST_16_9, 2, 6.0)
    assert len(writes) == SAVED_RUNS
    now[0] += SAVE_INTERVAL
    await times.learn(FAST_16_9, 2, 6.0)
    assert len(writes) == SAVED_RUNS + 1

    restarted = RunTimes(storage)
    await restarted.load(FAST_16_9)
    assert restarted.expect(FAST_16_9, 2) == pytest.approx(times.expect(FAST_16_9, 2), abs=1e-3)
    assert restarted.estimate(FAST_16_9).runs == SAVED_RUNS + 21

    # A process that starts from a well-learned estimate writes its first run at once.
    await restarted.learn(FAST_16_9, 2, 6.0)
    assert len(writes) == SAVED_RUNS + 2
