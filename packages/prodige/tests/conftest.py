import logging
import os

import pytest
import torch

os.environ.setdefault("PAPERCORE_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small graphs: one thread avoids oversubscribing shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("papercore").setLevel(logging.WARNING)
    yield
    torch.set_num_threads(before)
