"""Logging configuration (placeholder)."""

import logging

from bot.settings import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level)
