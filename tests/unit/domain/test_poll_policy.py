"""The poll policy: given a job's phase, queue position, time running and expected run time, when to look again."""

from __future__ import annotations

import dataclasses
import random
import statistics

import pytest

from bot.domain.poll_policy import Ask, Phase, Poll, PollPolicy, RunWatch

POLICY = PollPolicy.from_intervals(2.0, 15.0)  # the default settings


def old_queued_delay(position: int) -> float:
    """The pause every queued position had before: interval × (1 + p/2), at most 10 s (the old longest pause)."""
    return min(10.0, 2.0 * (1 + position / 2))


def detection_delay(policy: PollPolicy, expected: float, actual: float, spread: float = 0.0) -> tuple[float, int]:
    """Poll a run from its start as the policy says; (seconds from its end to the poll that sees it, polls made)."""
    now, polls = 0.0, 0
    while now < actual:
        now += policy.running(now, expected, spread)
        polls += 1
    return now - actual, polls


@pytest.mark.parametrize(
    ("position", "delay"),
    [(None, 3.0), (0, 1.0), (1, 1.0), (2, 4.0), (4, 6.0), (8, 10.0), (13, 15.0), (500, 15.0)],
)
def test_a_queued_job_is_read_with_status_more_often_near_the_front(position, delay):
    assert POLICY.next(Phase.QUEUED, position=position) == Poll(delay, Ask.STATUS)


def test_deep_queue_positions_are_never_polled_more_often_than_before():
    for position in range(2, 60):
        assert POLICY.queued(position) >= old_queued_delay(position)


def test_just_submitted_or_an_unknown_status_waits_the_interval_and_asks_the_status():
    assert POLICY.next(Phase.SUBMITTED) == Poll(2.0, Ask.STATUS)
    assert POLICY.next(Phase.UNKNOWN) == Poll(2.0, Ask.STATUS)


def test_a_running_job_is_read_with_result_and_sleeps_until_shortly_before_its_expected_end():
    poll = POLICY.next(Phase.RUNNING, elapsed=0.0, expected=8.0, spread=0.0)
    assert poll.ask is Ask.RESULT
    window = POLICY.lead + POLICY.min_spread * 8.0  # 1.4 s before the expected end
    assert poll.delay == pytest.approx(8.0 - window)


def test_a_long_run_is_still_looked_at_every_max_interval():
    assert POLICY.running(0.0, 120.0, 0.1) == 15.0


@pytest.mark.parametrize(
    ("elapsed", "delay"), [(7.5, 0.35), (7.6, 0.28), (7.8, 0.2), (8.0, 0.2), (8.1, 0.2), (9.0, 0.25), (16.0, 2.0)]
)
def test_around_the_expected_end_it_polls_densely_and_backs_off_when_the_job_runs_long(elapsed, delay):
    assert POLICY.running(elapsed, 8.0, 0.0) == pytest.approx(delay)


def test_the_window_widens_with_the_learned_spread_up_to_a_limit():
    assert POLICY.running(0.0, 10.0, 0.3) == pytest.approx(10.0 - POLICY.lead - 3.0)
    assert POLICY.running(0.0, 10.0, 5.0) == pytest.approx(10.0 - POLICY.lead - 4.0)


@pytest.mark.parametrize("images", [1, 2, 4, 8])
def test_an_exactly_expected_end_is_seen_within_a_fine_step_with_few_polls(images):
    expected = 2.0 * images
    late, polls = detection_delay(POLICY, expected, expected, spread=0.0)
    assert late <= POLICY.fine + 1e-9
    assert polls <= 7


def test_the_approach_to_an_uncertain_end_takes_fewer_polls_than_halving_the_time_left():
    """Ends spread evenly over ±0.5 s of the expected one (the start is known to half a position-1 poll):
    waiting 0.6 of the time left inside the window takes fewer polls than 0.5 did, and sees the end about as soon."""
    halving = dataclasses.replace(POLICY, approach=0.5)
    ends = [6.0 + (i - 50) / 100 for i in range(101)]
    now = [detection_delay(POLICY, 6.0, end) for end in ends]
    before = [detection_delay(halving, 6.0, end) for end in ends]
    assert sum(polls for _, polls in now) < 0.92 * sum(polls for _, polls in before)
    assert statistics.median(late for late, _ in now) <= statistics.median(late for late, _ in before) + 0.05
    assert max(late for late, _ in now) <= 0.3


def seen_start_runs(policy: PollPolicy, *, vary: float = 0.0, runs: int = 4000) -> tuple[float, list[float]]:
    """Runs of 1-4 images (2 s each) whose start was seen a uniform 0-1 s late (position 1 is asked every second) and
    is estimated half a second before it was seen: (mean polls per run, sorted delays from the end to its poll)."""
    rng = random.Random(7)
    polls, delays = 0, []
    for _ in range(runs):
        expected = 2.0 * rng.randint(1, 4)
        actual = expected * (1 + rng.uniform(-vary, vary))
        now = rng.uniform(0.0, 1.0)  # since the real start
        estimated_start = now - 0.5
        while True:
            now += policy.running(now - estimated_start, expected, max(vary, policy.min_spread))
            polls += 1
            if now >= actual:
                break
        delays.append(now - actual)
    return polls / runs, sorted(delays)


def test_a_start_known_to_half_a_second_is_followed_to_its_end_in_fewer_polls_than_before():
    """The defaults before 30 November (a window starting 0.6 s earlier, 0.6 of the time left) against today's: at
    least 0.6 fewer polls per run (4.7 -> 3.9), the end seen as soon (median 0.11 s), never more than 0.35 s late;
    and runs varying ±30 % are still seen within 1.2 s."""
    before = dataclasses.replace(POLICY, lead=0.6, approach=0.6)
    polls, delays = seen_start_runs(POLICY)
    old_polls, old_delays = seen_start_runs(before)
    assert polls <= old_polls - 0.6
    assert statistics.median(delays) <= statistics.median(old_delays) + 0.01
    assert delays[-1] <= 0.35
    _, varied = seen_start_runs(POLICY, vary=0.3)
    assert varied[-1] <= 1.2


@pytest.mark.parametrize("images", [1, 2, 4, 8])
@pytest.mark.parametrize("variation", [-0.3, -0.2, -0.1, 0.1, 0.2, 0.3])
def test_runs_within_30_percent_of_the_expected_are_seen_within_2_s_once_that_spread_is_learned(images, variation):
    expected = 2.0 * images
    late, _ = detection_delay(POLICY, expected, expected * (1 + variation), spread=0.3)
    assert late <= 2.0


def test_short_intervals_shorten_the_front_and_fine_steps():
    quick = PollPolicy.from_intervals(0.05, 0.2)
    assert quick.queued(1) == 0.05
    assert quick.running(0.0, 0.0) == 0.05
    assert max(quick.running(t / 10, 8.0, 0.3) for t in range(200)) <= 0.2


def test_inconsistent_intervals_are_refused():
    with pytest.raises(ValueError):
        PollPolicy(interval=2.0, max_interval=1.0)
    with pytest.raises(ValueError):
        PollPolicy(fine=2.0, front=1.0)


def test_a_run_is_timed_from_between_the_last_queued_and_first_running_poll():
    run = RunWatch(front=1.0)
    run.saw(Phase.QUEUED, 10.0)
    run.saw(Phase.QUEUED, 11.0)
    run.saw(Phase.RUNNING, 12.0)
    assert run.started_at == 11.5 and run.start_seen
    run.saw(Phase.RUNNING, 15.0)
    assert run.elapsed(16.0) == 4.5
    assert run.run_seconds(15.2, max_gap=1.5) == pytest.approx(15.1 - 11.5)


def test_a_long_gap_before_the_first_running_poll_puts_the_start_half_a_front_step_back():
    run = RunWatch(front=1.0)
    run.saw(Phase.QUEUED, 0.0)
    run.saw(Phase.RUNNING, 6.0)
    assert run.started_at == 5.5


def test_a_run_first_seen_running_is_not_timed():
    run = RunWatch(front=1.0, started_at=100.0)  # resumed: the start recorded by an earlier process
    run.saw(Phase.RUNNING, 103.0)
    assert run.elapsed(104.0) == 4.0
    assert run.run_seconds(105.0, max_gap=1.5) is None
    fresh = RunWatch(front=1.0)
    fresh.saw(Phase.RUNNING, 7.0)
    assert fresh.elapsed(9.0) == 2.0 and fresh.run_seconds(10.0, max_gap=1.5) is None
