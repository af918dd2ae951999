import pytest

from tests.fixtures.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store's tests run on both databases (a test may narrow it with `parametrize("backend", [...])`)."""
    return str(request.param)
