"""`python -m bot` / `seedream-bot`: run the bot, or one of the terminal commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import textwrap
from typing import Any

from bot.settings import SettingsError

EXIT_OK = 0
EXIT_USAGE = 2
HELP_WIDTH = 100


def version() -> str:
    try:
        return importlib.metadata.version("seedream-bot")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _command(commands: Any, name: str, summary: str, description: str, epilog: str | None = None) -> Any:
    return commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, HELP_WIDTH),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    from bot.cli import fetch as cli_fetch
    from bot.cli import generate as cli_generate
    from bot.cli import migrate as cli_migrate
    from bot.cli import report as cli_report

    parser = argparse.ArgumentParser(
        prog="seedream-bot",
        description="Discord bot for Seedream 4.0 image sets through RunComfy. With no command, runs the bot.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _command(
        commands,
        "run",
        "run the Discord bot (the default)",
        "Run the Discord bot until Ctrl-C or SIGTERM. Needs DISCORD_TOKEN and RUNCOMFY_API_TOKEN (in .env or the "
        "environment); a refused RunComfy token stops the start. Unfinished jobs resume at the next start.",
        "exit codes: 0 stopped, 1 Discord refused the token or could not be reached, 2 bad settings.",
    )
    cli_generate.add_arguments(
        _command(
            commands,
            "generate",
            "generate one image set from the terminal (a paid job; needs only RUNCOMFY_API_TOKEN)",
            cli_generate.DESCRIPTION,
            cli_generate.EPILOG,
        )
    )
    cli_fetch.add_arguments(
        _command(commands, "fetch", "save the images of a job started earlier", cli_fetch.DESCRIPTION, cli_fetch.EPILOG)
    )
    cli_report.add_arguments(
        _command(
            commands,
            "report",
            "print spend per server and member from the database (works while the bot runs)",
            cli_report.DESCRIPTION,
            cli_report.EPILOG,
        )
    )
    cli_migrate.add_arguments(
        _command(
            commands,
            "migrate-to-postgres",
            "copy the SQLite database into PostgreSQL (DATABASE_URL) and check the copy",
            cli_migrate.DESCRIPTION,
            cli_migrate.EPILOG,
        )
    )
    _command(
        commands,
        "check",
        "check the settings and that both tokens are accepted",
        "Check the settings, that the database folder is writable, and that Discord and RunComfy accept the "
        "tokens. Costs nothing; safe to run before the first start and while the bot runs.",
        "exit codes: 0 every check passed, 1 something failed (each line says what).",
    )
    health = _command(
        commands,
        "health",
        "exit 0 if the running bot wrote its heartbeat recently",
        "Read the heartbeat file (HEARTBEAT_PATH) the running bot refreshes every 30 s: for Docker's HEALTHCHECK, "
        "cron or a monitoring agent.",
        "exit codes: 0 healthy, 1 the heartbeat is missing or too old.",
    )
    health.add_argument("--max-age", type=float, default=90.0, help="seconds (default 90)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        if command == "generate":
            from bot.cli import generate as cli_generate

            return cli_generate.main(args)
        if command == "fetch":
            from bot.cli import fetch as cli_fetch

            return cli_fetch.main(args)
        if command == "report":
            from bot.cli import report as cli_report

            return cli_report.main(args)
        if command == "migrate-to-postgres":
            from bot.cli import migrate as cli_migrate

            return cli_migrate.main(args)
        if command == "check":
            from bot.cli import check

            return check.main()
        if command == "health":
            from bot.cli import health

            return health.main(max_age=args.max_age)
        from bot.discord import runner

        return runner.main()
    except SettingsError as exc:
        print(f"seedream-bot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
