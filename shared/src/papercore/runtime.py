"""Small runtime helpers: seeding, device and dtype resolution, progress bars."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "fp64": torch.float64,
}


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None → ``cuda`` when available, else ``cpu``; anything else is checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available: use --device cpu")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | None = None) -> torch.dtype:
    """``"auto"``/None → bfloat16 on CUDA, float32 elsewhere; names like ``"bf16"`` are accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
    key = dtype.removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of auto, float32, float16, bfloat16, float64")
    return DTYPES[key]


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs):
    """A tqdm progress bar on stderr (iterate over it; ``set_postfix`` shows running values).

    Silent when ``PAPERCORE_PROGRESS=0`` or ``disable=True``.
    """
    from tqdm.auto import tqdm

    disable = kwargs.pop("disable", False) or os.environ.get("PAPERCORE_PROGRESS", "1") == "0"
    return tqdm(
        iterable, desc=desc, total=total, disable=disable, file=sys.stderr, dynamic_ncols=True, **kwargs
    )
