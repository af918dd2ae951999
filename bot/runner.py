"""Runs the Discord bot (placeholder until the client lands)."""

from bot.settings import load_settings


def main() -> int:
    load_settings(require="bot")
    return 0
