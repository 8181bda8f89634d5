"""Shared kernels: each has a torch reference and a Triton kernel behind one function."""

from papercore.kernels.packing import pack_bits, packed_numel, unpack_bits
from papercore.kernels.triton_guard import (
    TritonUnavailableError,
    autotune_configs,
    interpreter_enabled,
    require_triton,
    resolve_backend,
    triton_mode,
)

__all__ = [
    "pack_bits",
    "packed_numel",
    "unpack_bits",
    "TritonUnavailableError",
    "autotune_configs",
    "interpreter_enabled",
    "require_triton",
    "resolve_backend",
    "triton_mode",
]
