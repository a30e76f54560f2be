import pytest


@pytest.fixture(scope="module", autouse=True)
def _single_threaded(one_thread):
    """Batched training runs single-threaded here, as the scripts run it (tests/conftest.py's ``one_thread``)."""
    yield
