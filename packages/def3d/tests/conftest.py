import os

import pytest
import torch

os.environ.setdefault("PAPERCORE_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks: one thread avoids OpenMP oversubscription on shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
