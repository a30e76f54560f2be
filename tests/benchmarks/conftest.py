import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Batched training runs single-threaded, as the scripts do (robust on a machine shared with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
