pytest_plugins = [
    "tests.fixtures.runcomfy",
    "tests.fixtures.storage",
    "tests.fixtures.discord",
]
