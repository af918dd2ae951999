"""SQLite's schema versions 1-5, as they were released: a release only appends versions, never edits these.

Version 1: jobs, guild quota settings, per-user and per-role overrides, usage resets, meta.
Version 2: an optional server-wide image budget per guild (with its own period), and usage counters
per day kept by triggers, filled from the existing jobs.
Version 3: the prompt filter: blocked words or patterns per guild, and how many prompts it refused
per user and day.
Version 4: a final state `unknown` (RunComfy may have taken and billed a job whose request id was never
recorded) and `submitted_at`, the time the submit request was sent. SQLite cannot change a CHECK
constraint, so the jobs table is rebuilt (its indexes and triggers with it).
Version 5: money, in whole micro-dollars. Per job the quoted price per image when it was reserved, and its cost
(RunComfy's figure, or an estimate marked as such); per guild a budget in dollars and an alert channel; the guild's
day counters gain the dollars spent (settled jobs' costs) and held (unsettled jobs' images x quoted price); and
which budget alerts were sent in which period.
"""

from __future__ import annotations

_TERMINAL_V1 = "('delivered', 'cancelled', 'failed', 'expired')"
_TERMINAL = "('delivered', 'cancelled', 'failed', 'expired', 'unknown')"

_V1 = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE guilds (
        guild_id INTEGER PRIMARY KEY,
        quota_images INTEGER CHECK (quota_images >= 0),
        quota_period TEXT CHECK (quota_period IN ('day', 'week', 'month')),
        max_concurrent INTEGER CHECK (max_concurrent >= 1)
    )
    """,
    """
    CREATE TABLE quota_overrides (
        guild_id INTEGER NOT NULL REFERENCES guilds (guild_id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),
        target_id INTEGER NOT NULL,
        images INTEGER CHECK (images >= 0),  -- NULL: unlimited
        updated_at REAL NOT NULL,
        PRIMARY KEY (guild_id, kind, target_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE usage_resets (
        guild_id INTEGER NOT NULL REFERENCES guilds (guild_id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL,
        reset_at REAL NOT NULL,
        PRIMARY KEY (guild_id, user_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        options TEXT NOT NULL,
        request_id TEXT UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'queued', 'running', 'delivering',
                                             'delivered', 'cancelled', 'failed', 'expired')),
        queue_position INTEGER,
        images_reserved INTEGER NOT NULL CHECK (images_reserved >= 0),
        images_delivered INTEGER NOT NULL DEFAULT 0 CHECK (images_delivered >= 0),
        images_charged INTEGER NOT NULL DEFAULT 0 CHECK (images_charged BETWEEN 0 AND images_reserved),
        settled INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
        error TEXT,
        interaction_token TEXT,
        application_id INTEGER,
        token_created_at REAL,
        reply_message_id INTEGER,
        reply_channel_id INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    )
    """,
    """
    CREATE INDEX jobs_by_user ON jobs (guild_id, user_id, created_at)
    """,
    # Only unfinished jobs: the concurrency cap and what a restart resumes.
    f"""
    CREATE INDEX jobs_unfinished ON jobs (guild_id, user_id, created_at)
        WHERE state NOT IN {_TERMINAL_V1}
    """,
)

# Usage counters per UTC day (day = floor(created_at / 86400)), kept by triggers on `jobs`, so that a
# period's usage is a sum of at most 31 rows however many jobs a server runs. A job adds its charged
# images once settled, else its reserved images, to the day it was created. `forgiven` jobs (created
# before an admin reset the user's usage) leave the user's counters but stay in the server's.
_DAY = "CAST({row}.created_at / 86400 AS INTEGER)"
_CHARGED = "(CASE WHEN {row}.settled THEN {row}.images_charged ELSE 0 END)"
_RESERVED = "(CASE WHEN {row}.settled THEN 0 ELSE {row}.images_reserved END)"


def _add_to_user_days(row: str, sign: str) -> str:
    day, charged, reserved = (part.format(row=row) for part in (_DAY, _CHARGED, _RESERVED))
    return f"""
        INSERT INTO user_usage_days (guild_id, user_id, day, charged, reserved)
        SELECT {row}.guild_id, {row}.user_id, {day}, {sign}{charged}, {sign}{reserved} WHERE NOT {row}.forgiven
        ON CONFLICT (guild_id, user_id, day)
        DO UPDATE SET charged = charged + excluded.charged, reserved = reserved + excluded.reserved;"""


def _add_to_guild_days(row: str, sign: str) -> str:
    day, charged, reserved = (part.format(row=row) for part in (_DAY, _CHARGED, _RESERVED))
    return f"""
        INSERT INTO guild_usage_days (guild_id, day, charged, reserved)
        SELECT {row}.guild_id, {day}, {sign}{charged}, {sign}{reserved} WHERE true
        ON CONFLICT (guild_id, day)
        DO UPDATE SET charged = charged + excluded.charged, reserved = reserved + excluded.reserved;"""


_COUNT_TRIGGERS = (
    f"""
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        {_add_to_user_days("NEW", "+")}
        {_add_to_guild_days("NEW", "+")}
    END
    """,
    # guild_id, user_id and created_at of a job never change; these columns are all that moves its counts.
    f"""
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF settled, images_charged, images_reserved, forgiven ON jobs
    BEGIN
        {_add_to_user_days("OLD", "-")}
        {_add_to_user_days("NEW", "+")}
        {_add_to_guild_days("OLD", "-")}
        {_add_to_guild_days("NEW", "+")}
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        {_add_to_user_days("OLD", "-")}
        {_add_to_guild_days("OLD", "-")}
    END
    """,
)

_V2 = (
    "ALTER TABLE guilds ADD COLUMN budget_images INTEGER CHECK (budget_images >= 0)",
    "ALTER TABLE guilds ADD COLUMN budget_period TEXT CHECK (budget_period IN ('day', 'week', 'month'))",
    "ALTER TABLE jobs ADD COLUMN forgiven INTEGER NOT NULL DEFAULT 0 CHECK (forgiven IN (0, 1))",
    # Version 1 counted a user's jobs created after their last reset: the same thing, marked on the jobs.
    """
    UPDATE jobs SET forgiven = 1
     WHERE created_at <= (SELECT reset_at FROM usage_resets AS r
                           WHERE r.guild_id = jobs.guild_id AND r.user_id = jobs.user_id)
    """,
    """
    CREATE TABLE user_usage_days (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        charged INTEGER NOT NULL,
        reserved INTEGER NOT NULL,
        PRIMARY KEY (guild_id, user_id, day)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX user_usage_days_by_day ON user_usage_days (guild_id, day)",
    """
    CREATE TABLE guild_usage_days (
        guild_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        charged INTEGER NOT NULL,
        reserved INTEGER NOT NULL,
        PRIMARY KEY (guild_id, day)
    ) WITHOUT ROWID
    """,
    f"""
    INSERT INTO user_usage_days (guild_id, user_id, day, charged, reserved)
    SELECT guild_id, user_id, {_DAY.format(row="jobs")}, sum({_CHARGED.format(row="jobs")}),
           sum({_RESERVED.format(row="jobs")})
      FROM jobs WHERE NOT forgiven GROUP BY 1, 2, 3
    """,
    f"""
    INSERT INTO guild_usage_days (guild_id, day, charged, reserved)
    SELECT guild_id, {_DAY.format(row="jobs")}, sum({_CHARGED.format(row="jobs")}), sum({_RESERVED.format(row="jobs")})
      FROM jobs GROUP BY 1, 2
    """,
    *_COUNT_TRIGGERS,
)

_V3 = (
    # `term` is stored in its canonical form (see `bot.prompt_filter.parse_term`), so it is the key.
    """
    CREATE TABLE blocked_terms (
        guild_id INTEGER NOT NULL,
        term TEXT NOT NULL CHECK (length(term) BETWEEN 1 AND 100),
        added_by INTEGER NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (guild_id, term)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE blocked_prompt_days (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        count INTEGER NOT NULL CHECK (count >= 0),
        PRIMARY KEY (guild_id, user_id, day)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX blocked_prompt_days_by_day ON blocked_prompt_days (guild_id, day)",
)

_JOBS_V3_COLUMNS = """id, guild_id, channel_id, user_id, options, request_id, state, queue_position, images_reserved,
    images_delivered, images_charged, settled, error, interaction_token, application_id, token_created_at,
    reply_message_id, reply_channel_id, created_at, updated_at, started_at, finished_at, forgiven"""

_V4 = (
    """
    CREATE TABLE jobs_v4 (
        id TEXT PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        options TEXT NOT NULL,
        request_id TEXT UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'queued', 'running', 'delivering',
                                             'delivered', 'cancelled', 'failed', 'expired', 'unknown')),
        queue_position INTEGER,
        images_reserved INTEGER NOT NULL CHECK (images_reserved >= 0),
        images_delivered INTEGER NOT NULL DEFAULT 0 CHECK (images_delivered >= 0),
        images_charged INTEGER NOT NULL DEFAULT 0 CHECK (images_charged BETWEEN 0 AND images_reserved),
        settled INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
        error TEXT,
        interaction_token TEXT,
        application_id INTEGER,
        token_created_at REAL,
        reply_message_id INTEGER,
        reply_channel_id INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        forgiven INTEGER NOT NULL DEFAULT 0 CHECK (forgiven IN (0, 1)),
        submitted_at REAL
    )
    """,
    f"INSERT INTO jobs_v4 ({_JOBS_V3_COLUMNS}) SELECT {_JOBS_V3_COLUMNS} FROM jobs",
    "DROP TABLE jobs",  # its indexes and triggers go with it; no trigger fires
    "ALTER TABLE jobs_v4 RENAME TO jobs",
    "CREATE INDEX jobs_by_user ON jobs (guild_id, user_id, created_at)",
    f"""
    CREATE INDEX jobs_unfinished ON jobs (guild_id, user_id, created_at)
        WHERE state NOT IN {_TERMINAL}
    """,
    *_COUNT_TRIGGERS,
)

_SPENT = "(CASE WHEN {row}.settled THEN coalesce({row}.cost_micros, 0) ELSE 0 END)"
_HELD = "(CASE WHEN {row}.settled THEN 0 ELSE {row}.images_reserved * coalesce({row}.price_micros, 0) END)"


def _add_to_guild_days_v5(row: str, sign: str) -> str:
    parts = (_DAY, _CHARGED, _RESERVED, _SPENT, _HELD)
    day, charged, reserved, spent, held = (part.format(row=row) for part in parts)
    return f"""
        INSERT INTO guild_usage_days (guild_id, day, charged, reserved, spent_micros, held_micros)
        SELECT {row}.guild_id, {day}, {sign}{charged}, {sign}{reserved}, {sign}{spent}, {sign}{held} WHERE true
        ON CONFLICT (guild_id, day)
        DO UPDATE SET charged = charged + excluded.charged, reserved = reserved + excluded.reserved,
                      spent_micros = spent_micros + excluded.spent_micros,
                      held_micros = held_micros + excluded.held_micros;"""


_V5 = (
    "ALTER TABLE jobs ADD COLUMN price_micros INTEGER CHECK (price_micros >= 0)",
    "ALTER TABLE jobs ADD COLUMN cost_micros INTEGER CHECK (cost_micros >= 0)",
    "ALTER TABLE jobs ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0 CHECK (cost_estimated IN (0, 1))",
    "ALTER TABLE guilds ADD COLUMN budget_usd_micros INTEGER CHECK (budget_usd_micros >= 0)",
    "ALTER TABLE guilds ADD COLUMN alert_channel_id INTEGER",
    "ALTER TABLE guild_usage_days ADD COLUMN spent_micros INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE guild_usage_days ADD COLUMN held_micros INTEGER NOT NULL DEFAULT 0",
    "DROP TRIGGER jobs_count_insert",
    "DROP TRIGGER jobs_count_update",
    "DROP TRIGGER jobs_count_delete",
    f"""
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        {_add_to_user_days("NEW", "+")}
        {_add_to_guild_days_v5("NEW", "+")}
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_update
    AFTER UPDATE OF settled, images_charged, images_reserved, forgiven, price_micros, cost_micros ON jobs
    BEGIN
        {_add_to_user_days("OLD", "-")}
        {_add_to_user_days("NEW", "+")}
        {_add_to_guild_days_v5("OLD", "-")}
        {_add_to_guild_days_v5("NEW", "+")}
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        {_add_to_user_days("OLD", "-")}
        {_add_to_guild_days_v5("OLD", "-")}
    END
    """,
    """
    CREATE TABLE budget_alerts (
        guild_id INTEGER NOT NULL,
        period_start INTEGER NOT NULL,
        percent INTEGER NOT NULL,
        sent_at REAL NOT NULL,
        PRIMARY KEY (guild_id, period_start, percent)
    ) WITHOUT ROWID
    """,
)

SQLITE_HISTORY: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5)
