"""SHARD_COUNT, SHARD_IDS and SYNC_COMMANDS: one process may run part of Discord's shards."""

import pytest

from bot.settings import Settings, SettingsError, load_settings

TOKENS = {"DISCORD_TOKEN": "discord-secret", "RUNCOMFY_API_TOKEN": "runcomfy-secret"}


def shards(**env: str):
    return load_settings({**TOKENS, **env}, create_dirs=False)


def test_without_shard_settings_one_process_runs_every_shard_and_syncs():
    settings = shards()
    assert settings.shard_count is None and settings.shard_ids is None
    assert settings.syncs_commands


def test_shard_ids_take_lists_and_ranges():
    assert shards(SHARD_COUNT="4", SHARD_IDS="3,0,1,2").shard_ids == (3, 0, 1, 2)
    assert shards(SHARD_COUNT="6", SHARD_IDS=" 2-5, 0,1 ").shard_ids == (2, 3, 4, 5, 0, 1)
    assert shards(SHARD_COUNT="4").shard_ids is None  # every shard of the four, in this process


def test_with_sqlite_one_process_must_run_every_shard():
    with pytest.raises(SettingsError) as err:
        shards(SHARD_COUNT="4", SHARD_IDS="0,1")
    message = str(err.value)
    assert "runs 2 of the 4 shards" in message and "SQLite" in message and "DATABASE_URL" in message


def test_with_postgresql_a_process_may_run_part_of_the_shards():
    settings = shards(SHARD_COUNT="4", SHARD_IDS="2,3", DATABASE_URL="postgresql://bot:pw@db.internal/seedream")
    assert settings.shard_ids == (2, 3) and not settings.syncs_commands
    assert settings.shards_text == "2,3 of 4"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3,4"}, "shards are numbered 0..3 (SHARD_COUNT=4); shard 4 is outside"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0-5"}, "shards 2,3,4,5 are outside that range"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1,1"}, "shard 1 is listed more than once"),
        ({"SHARD_COUNT": "8", "SHARD_IDS": "0-3,2"}, "shard 2 is listed more than once"),
        ({"SHARD_COUNT": "64", "SHARD_IDS": "0-7,0-7"}, "shards 0,1,2,3,4,… are listed more than once"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,1,2"}, "shard 2 is outside that range"),
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS is set but SHARD_COUNT is not"),
        ({"SHARD_COUNT": "0"}, 'SHARD_COUNT="0" is invalid: expected a whole number from 1 to 65536'),
        ({"SHARD_COUNT": "70000"}, "SHARD_COUNT=70000 is invalid"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "one"}, 'SHARD_IDS="one" is invalid: expected shard numbers'),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3-1"}, 'SHARD_IDS="3-1" is invalid'),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,,1"}, "SHARD_IDS"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "-1"}, "SHARD_IDS"),
        ({"SYNC_COMMANDS": "maybe"}, "SYNC_COMMANDS=\"maybe\" is invalid: expected one of auto, yes, no"),
    ],
)
def test_shard_settings_are_checked_with_one_clear_line(env, expected):
    with pytest.raises(SettingsError) as err:
        shards(**env)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_a_huge_range_is_refused_before_it_is_expanded():
    with pytest.raises(SettingsError, match="SHARD_IDS"):
        shards(SHARD_COUNT="4", SHARD_IDS="0-999999999999")


@pytest.mark.parametrize(
    ("values", "syncs"),
    [
        ({"shard_count": 4, "shard_ids": (0, 1)}, True),  # holds shard 0
        ({"shard_count": 4, "shard_ids": (2, 3)}, False),
        ({"shard_count": 4}, True),
        ({}, True),
        ({"shard_count": 4, "shard_ids": (2, 3), "sync_commands": "yes"}, True),
        ({"shard_count": 4, "shard_ids": (0, 1), "sync_commands": "no"}, False),
        ({"sync_commands": "no"}, False),
    ],
)
def test_the_process_holding_shard_0_syncs_unless_told_otherwise(values, syncs):
    assert Settings(**values).syncs_commands is syncs


def test_sync_commands_is_read_from_the_environment():
    assert shards(SYNC_COMMANDS="No").sync_commands == "no"
    assert shards().sync_commands == "auto"
