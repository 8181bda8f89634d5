import os

import pytest
import torch

os.environ.setdefault("PAPERCORE_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on a shared 2-core machine
    yield
    torch.set_num_threads(n)
