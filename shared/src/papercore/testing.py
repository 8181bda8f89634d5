"""Test helpers shared by every package (also a pytest plugin, registered by papercore's entry point).

* markers: ``gpu`` (skipped with a reason when CUDA is absent) and ``slow``;
* fixture ``seed``: seeds Python, NumPy and torch (and makes torch deterministic) for a test;
* tolerance helpers: :func:`rel_error`, :func:`assert_close_rel`;
* :func:`triton_or_skip`: skip unless a Triton kernel can run here (GPU or interpreter).
"""

from __future__ import annotations

import pytest
import torch

from papercore.kernels.triton_guard import triton_mode
from papercore.runtime import seed_everything

DEFAULT_SEED = 1234

gpu = pytest.mark.gpu
slow = pytest.mark.slow


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ computed in float64 (0 when both are zero; inf on NaN)."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        return float("inf")
    num = torch.linalg.vector_norm(a - e).item()
    den = torch.linalg.vector_norm(e).item()
    return num / den if den > 0 else num


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """Assert the relative error of ``actual`` against ``expected`` is at most ``tol``."""
    err = rel_error(actual, expected)
    assert err <= tol, f"{what + ': ' if what else ''}relative error {err:.3e} > {tol:.1e}"


# Relative tolerances by compute dtype (see docs/conventions.md).
TOLERANCES = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def tolerance(dtype: torch.dtype) -> float:
    """Default relative tolerance for results computed in ``dtype``."""
    return TOLERANCES[dtype]


def triton_or_skip(device: str = "cpu") -> None:
    """Skip the calling test unless a Triton kernel can run for ``device`` tensors."""
    if triton_mode(device) == "unavailable":
        pytest.skip("Triton cannot run here: no CUDA device and TRITON_INTERPRET is not 1")


# ---------------------------------------------------------------- pytest plugin hooks
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device (skipped with a reason when none is present)"
    )
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def seed() -> int:
    """Seed everything with a fixed value and return it."""
    seed_everything(DEFAULT_SEED)
    return DEFAULT_SEED
