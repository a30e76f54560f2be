"""The data tests' ``data_root`` fixture, and torch's thread count restored after each in-process script run."""

import pytest
import torch

try:
    from tests.data.conftest import data_root  # noqa: F401
except ImportError:  # it moved to tests/conftest.py, which pytest finds by itself
    pass


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
