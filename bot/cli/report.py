"""`seedream-bot report`: spend per server and per member from the database, as a table or CSV.

It reads the database file directly, read-only, and takes no lock: it works while the bot runs (the database is
in WAL mode, so reading never blocks the bot, nor the bot the report). With DATABASE_URL it reads PostgreSQL.
Amounts are US dollars: RunComfy's figure for each set where it gave one, else the estimate (images posted x the
price quoted when the set was asked for).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sqlite3
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain.money import format_usd, plain_usd
from bot.settings import load_settings
from bot.store import pg_schema
from bot.store.dburl import mask_url
from bot.store.errors import StorageError
from bot.store.money import SPEND_COLUMNS, Spend, spend_of
from bot.store.postgres import PostgresDatabase

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Print what each server and each of its members spent between two days (UTC), from the database: US dollars "
    "as RunComfy billed them, and estimated (images posted x quoted price) where RunComfy gave no cost. Reads the "
    "database without locking it, so it works while the bot runs."
)
EPILOG = "exit codes: 0 printed, 1 the database cannot be read, 2 bad arguments or settings."


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2026-11-01") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_day, required=True, metavar="YYYY-MM-DD", help="first day (UTC) counted")
    parser.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day (UTC) counted (default: today)")
    parser.add_argument("--guild", type=int, metavar="ID", help="only this server")
    parser.add_argument("--format", choices=("table", "csv"), default="table", help="output (default: table)")


@dataclass(frozen=True)
class Row:
    guild_id: int
    user_id: int | None  # None: the server's total
    spend: Spend


def _queries(since: date, until: date, guild_id: int | None) -> tuple[str, str, dict[str, Any]]:
    """The per-server and per-member statements (in the SQL both databases share) and their parameters."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp()
    end = (datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)).timestamp()
    where = "created_at >= :start AND created_at < :end"
    parameters: dict[str, Any] = {"start": start, "end": end}
    if guild_id is not None:
        where += " AND guild_id = :guild"
        parameters["guild"] = guild_id
    guilds = f"SELECT guild_id, {SPEND_COLUMNS} FROM jobs WHERE {where} GROUP BY guild_id ORDER BY guild_id"
    members = f"""SELECT * FROM (SELECT guild_id, user_id, {SPEND_COLUMNS} FROM jobs WHERE {where}
                                  GROUP BY guild_id, user_id) AS members
                   ORDER BY guild_id, actual + estimated DESC, images DESC, user_id"""
    return guilds, members, parameters


def read_spend(path: Path, since: date, until: date, guild_id: int | None = None) -> list[Row]:
    """Per server (its total first) and per member, biggest spenders first, for jobs created in [since, until]."""
    guilds_sql, members_sql, parameters = _queries(since, until, guild_id)
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        guilds = connection.execute(guilds_sql, parameters).fetchall()
        members = connection.execute(members_sql, parameters).fetchall()
    finally:
        connection.close()
    return _rows(guilds, members)


async def read_spend_postgres(url: str, since: date, until: date, guild_id: int | None = None) -> list[Row]:
    """`read_spend` on PostgreSQL (read only: the schema is neither made nor upgraded). Raises `StorageError`."""
    guilds_sql, members_sql, parameters = _queries(since, until, guild_id)
    database = await PostgresDatabase.connect(url, max_size=1)
    try:
        async with database.connection() as connection:
            version = await pg_schema.schema_version(connection)
            if version == 0:
                raise StorageError(f"{mask_url(url)} has no seedream-bot tables yet: start the bot once")
            guilds = await connection.fetchall(guilds_sql, parameters)
            members = await connection.fetchall(members_sql, parameters)
    finally:
        await database.close()
    return _rows(guilds, members)


def _rows(guild_rows: Iterable[Iterable[Any]], member_rows: Iterable[Iterable[Any]]) -> list[Row]:
    guilds, members = [tuple(row) for row in guild_rows], [tuple(row) for row in member_rows]
    rows: list[Row] = []
    for guild in guilds:
        rows.append(Row(int(guild[0]), None, spend_of(guild[1:])))
        rows.extend(Row(int(m[0]), int(m[1]), spend_of(m[2:])) for m in members if m[0] == guild[0])
    return rows


def as_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["guild_id", "user_id", "jobs", "images", "actual_usd", "estimated_usd", "total_usd", "held_usd"])
    for row in rows:
        spend = row.spend
        writer.writerow([
            row.guild_id, "" if row.user_id is None else row.user_id, spend.jobs, spend.images,
            plain_usd(spend.actual_micros), plain_usd(spend.estimated_micros), plain_usd(spend.total_micros),
            plain_usd(spend.held_micros),
        ])  # fmt: skip
    return out.getvalue()


def as_table(rows: list[Row], since: date, until: date) -> str:
    lines = [f"Spend from {since} to {until} (UTC), US dollars; estimated = no cost from RunComfy"]
    header = ("server", "member", "jobs", "images", "billed", "estimated", "total", "in progress")
    table = [header]
    for row in rows:
        spend = row.spend
        member = "(all members)" if row.user_id is None else str(row.user_id)
        table.append((
            str(row.guild_id), member, str(spend.jobs), str(spend.images), format_usd(spend.actual_micros),
            format_usd(spend.estimated_micros), format_usd(spend.total_micros), format_usd(spend.held_micros),
        ))  # fmt: skip
    if len(table) == 1:
        return lines[0] + "\nNo sets in this time."
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(line)]
        lines.append("  ".join(cells).rstrip())
    total = sum(row.spend.total_micros for row in rows if row.user_id is None)
    lines.append(f"Total: {format_usd(total)}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    settings = load_settings(require="none", create_dirs=False)
    until = args.until or datetime.now(UTC).date()
    if until < args.since:
        print("seedream-bot report: --until is before --since", file=sys.stderr)
        return EXIT_USAGE
    if settings.database_url:
        try:
            rows = asyncio.run(read_spend_postgres(settings.database_url, args.since, until, args.guild))
        except StorageError as exc:
            print(f"seedream-bot report: {exc}", file=sys.stderr)
            return EXIT_FAILED
        _print(rows, args.format, args.since, until)
        return EXIT_OK
    path = settings.database_path
    if not path.is_file():
        print(f"seedream-bot report: no database at {path} (DATABASE_PATH)", file=sys.stderr)
        return EXIT_FAILED
    try:
        rows = read_spend(path, args.since, until, args.guild)
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):
            print(f"seedream-bot report: {path} was written by an older release: start the bot once to upgrade it",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"seedream-bot report: the database {path} cannot be read ({exc})", file=sys.stderr)
        return EXIT_FAILED
    except sqlite3.Error as exc:
        print(f"seedream-bot report: the database {path} cannot be read ({exc})", file=sys.stderr)
        return EXIT_FAILED
    _print(rows, args.format, args.since, until)
    return EXIT_OK


def _print(rows: list[Row], output: str, since: date, until: date) -> None:
    if output == "csv":
        sys.stdout.write(as_csv(rows))
    else:
        print(as_table(rows, since, until))
