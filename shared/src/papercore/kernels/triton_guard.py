"""Lazy, guarded access to Triton.

Triton ships wheels for Linux only and needs either a CUDA GPU or its CPU interpreter
(``TRITON_INTERPRET=1``, read once when ``triton`` is first imported). Every kernel module
in the project goes through this guard so that:

* importing a package never imports Triton (CLIs stay fast, macOS/Windows users are fine);
* tests on CPU run the same kernels under the interpreter;
* asking for a Triton path with neither a GPU nor the interpreter fails with a message that
  says what to do, instead of Triton's ``0 active drivers``.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

TritonMode = Literal["gpu", "interpreter", "unavailable"]


class TritonUnavailableError(RuntimeError):
    """A Triton kernel was requested where it cannot run."""


def interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1`` (Triton's CPU interpreter) is set."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def triton_version() -> str | None:
    """Installed Triton version, or None when Triton cannot be imported."""
    try:
        import triton
    except Exception:  # ImportError, or a broken install on an unsupported platform
        return None
    return triton.__version__


def triton_mode(device: torch.device | str | None = None) -> TritonMode:
    """How a Triton kernel would run for tensors on ``device``.

    ``"interpreter"`` when ``TRITON_INTERPRET=1`` (any device), ``"gpu"`` for a CUDA device with
    Triton installed, else ``"unavailable"``.
    """
    if triton_version() is None:
        return "unavailable"
    if interpreter_enabled():
        return "interpreter"
    dev = torch.device(device) if device is not None else None
    if dev is None:
        return "gpu" if torch.cuda.is_available() else "unavailable"
    return "gpu" if dev.type == "cuda" and torch.cuda.is_available() else "unavailable"


def require_triton(device: torch.device | str) -> None:
    """Raise :class:`TritonUnavailableError` unless a Triton kernel can run on ``device``."""
    mode = triton_mode(device)
    if mode != "unavailable":
        return
    if triton_version() is None:
        raise TritonUnavailableError(
            "Triton is not installed: install it with `pip install triton` (Linux only), "
            "or use backend='torch'."
        )
    raise TritonUnavailableError(
        f"a Triton kernel was requested for a tensor on {torch.device(device)}, but Triton needs a CUDA "
        "GPU or its CPU interpreter: move the tensor to a GPU, set TRITON_INTERPRET=1 before starting "
        "Python (slow, for tests), or use backend='torch'."
    )


def autotune_configs(configs: list) -> list:
    """Autotune configs, collapsed to the first one under the interpreter.

    The interpreter cannot benchmark (autotuning several configs fails with ``0 active drivers``);
    with one config the autotuner just runs it.
    """
    return configs[:1] if interpreter_enabled() else configs


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Map ``backend`` ("auto", "triton" or "torch") to the one that will run.

    ``"auto"`` picks Triton on a CUDA device and the torch reference elsewhere (also under the
    interpreter, which is for tests, not for speed). ``"triton"`` is checked with
    :func:`require_triton`.
    """
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    if backend == "auto":
        return "triton" if triton_mode(device) == "gpu" else "torch"
    if backend == "triton":
        require_triton(device)
    return backend
