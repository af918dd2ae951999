"""`python -m bot` / `seedream-bot`: run the bot, or one of the terminal commands."""

from __future__ import annotations

import argparse
import sys

from bot.settings import SettingsError

EXIT_OK = 0
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedream-bot",
        description="Discord bot for Seedream 4.0 image sets through RunComfy. With no command, runs the bot.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the Discord bot (the default)")
    from bot import cli_generate

    cli_generate.add_arguments(
        commands.add_parser("generate", help="generate one image set from the terminal (needs only RUNCOMFY_API_TOKEN)")
    )
    commands.add_parser("check", help="check the settings and that both tokens are accepted")
    health = commands.add_parser("health", help="exit 0 if the running bot wrote its heartbeat recently")
    health.add_argument("--max-age", type=float, default=90.0, help="seconds (default 90)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    try:
        if command == "generate":
            from bot import cli_generate

            return cli_generate.main(args)
        if command == "check":
            from bot import check

            return check.main()
        if command == "health":
            from bot import health

            return health.main(max_age=args.max_age)
        from bot import runner

        return runner.main()
    except SettingsError as exc:
        print(f"seedream-bot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
