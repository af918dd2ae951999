"""Job states: which can be cancelled, and the SQL built from the sets (one definition for all)."""

from __future__ import annotations

import sqlite3

import pytest

from bot.domain.job_state import CANCELLABLE_STATES, TERMINAL_STATES, UNFINISHED_STATES, JobState, sql_list
from bot.store.migrations import UNFINISHED_SQL


def test_cancellable_states_are_the_unfinished_ones_still_queued():
    assert CANCELLABLE_STATES == {JobState.PENDING, JobState.SUBMITTED, JobState.QUEUED}
    assert CANCELLABLE_STATES <= UNFINISHED_STATES
    assert [state for state in JobState if state.cancellable] == sorted(CANCELLABLE_STATES, key=list(JobState).index)


@pytest.mark.parametrize("state", list(JobState))
def test_the_unfinished_query_selects_exactly_the_unfinished_states(state):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE jobs (state TEXT)")
    db.execute("INSERT INTO jobs VALUES (?)", (state.value,))
    selected = db.execute(f"SELECT count(*) FROM jobs WHERE {UNFINISHED_SQL}").fetchone()[0]
    assert selected == (state in UNFINISHED_STATES)


def test_sql_list_spells_each_state_once():
    assert sql_list(TERMINAL_STATES) == "('delivered', 'cancelled', 'failed', 'expired', 'unknown')"
    assert sql_list(frozenset({JobState.QUEUED})) == "('queued')"
