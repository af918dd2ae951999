import logging

import pytest

pytest_plugins = [
    "tests.fixtures.runcomfy",
    "tests.fixtures.storage",
    "tests.fixtures.postgres",
    "tests.fixtures.discord",
]


@pytest.fixture(autouse=True)
def _forget_the_bots_log_handler():
    """A test that ran `configure_logging` leaves no handler on its (closed) captured stderr for the next tests."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_seedream_handler", False):
            root.removeHandler(handler)
