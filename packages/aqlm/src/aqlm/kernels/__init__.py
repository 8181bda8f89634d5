"""Kernels behind :class:`aqlm.QuantizedLinear`.

:func:`aqlm_linear` picks the path by device and number of tokens; every path equals
``F.linear(x, dequantize(codes, codebooks, scales), bias)`` (:mod:`aqlm.kernels.reference`).

=====================  =============================================================================
path                   when
=====================  =============================================================================
``triton_gemv_lut``    Triton, <= 4 tokens, B <= 8 (2x8g8, 1x8g8, ...): lookup tables in shared memory
``triton_gemv_1x16``   Triton, <= 8 tokens, 1x16g8 / 1x16g16: codebook gathers from L2
``triton_gemv``        Triton, <= 8 tokens, any other M, B, g
``triton_dequant``     Triton, more tokens: dequantize to a dense weight, then ``F.linear`` (cuBLAS)
``cpu_lut``            CPU, <= 64 tokens, B <= 8: lookup table + ``embedding_bag``
``dequant``            everything else (``out_group_size > 1``, float64 on GPU, ``backend="torch"``)
=====================  =============================================================================

"Triton" means CUDA tensors with ``backend="auto"``, or ``backend="triton"`` (which also runs the
kernels on CPU tensors under ``TRITON_INTERPRET=1``, for tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aqlm.kernels import cpu_lut, triton_gemv
from aqlm.kernels.reference import dequantize, linear, signed_codes, storage_dtype, unsigned_codes
from papercore.kernels.triton_guard import resolve_backend

PATHS = ("triton_gemv_lut", "triton_gemv_1x16", "triton_gemv", "triton_dequant", "cpu_lut", "dequant")
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_GEMV_PATHS = {"lut": "triton_gemv_lut", "1x16": "triton_gemv_1x16", "direct": "triton_gemv"}


def aqlm_linear(x, codes, codebooks, scales, bias=None, *, backend: str = "auto") -> torch.Tensor:
    """``y = x Ŵᵀ + bias`` with ``Ŵ = dequantize(codes, codebooks, scales)``.

    Parameters
    ----------
    x : Tensor ``[..., in]``
    codes : Tensor ``[out/out_g, in/g, M]``, int8 (B <= 8) or int16, unsigned codes stored signed
    codebooks : Tensor ``[M, 2^B, out_g, g]``
    scales : Tensor ``[out/out_g, 1, 1, 1]``
    bias : Tensor ``[out]`` or None
    backend : {"auto", "triton", "torch"}
        See the module docstring; :func:`select_path` tells which path runs.

    Returns
    -------
    Tensor ``[..., out]`` in ``x.dtype``. Differentiable in ``x``, ``codebooks``, ``scales`` and
    ``bias`` (straight through the dequantized weight, :mod:`aqlm.kernels.autograd`).
    """
    _check(x, codes, codebooks, scales, bias)
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, codebooks, scales, bias)
    ):
        from aqlm.kernels.autograd import AQLMLinearFunction

        return AQLMLinearFunction.apply(x, codes, codebooks, scales, bias, backend)
    return linear_fast(x, codes, codebooks, scales, bias, backend=backend)


def select_path(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor, backend: str = "auto") -> str:
    """Name of the path :func:`aqlm_linear` takes for these inputs (one of :data:`PATHS`)."""
    tokens = math.prod(x.shape[:-1])
    out_g = codebooks.shape[2]
    if resolve_backend(backend, x.device) == "triton" and out_g == 1 and x.dtype in _TRITON_DTYPES:
        kernel = triton_gemv.gemv_kernel(codes, codebooks)
        if tokens <= triton_gemv.MAX_TOKENS_BY_KERNEL[kernel]:
            return _GEMV_PATHS[kernel]
        return "triton_dequant"
    if x.device.type == "cpu" and cpu_lut.lut_supported(codebooks) and tokens <= cpu_lut.MAX_TOKENS:
        return "cpu_lut"
    return "dequant"


def linear_fast(x, codes, codebooks, scales, bias=None, *, backend: str = "auto") -> torch.Tensor:
    """:func:`aqlm_linear` without autograd (inputs are not checked)."""
    path = select_path(x, codes, codebooks, backend)
    out_features = codes.shape[0] * codebooks.shape[2]
    x2 = x.reshape(-1, x.shape[-1])
    codes, codebooks, scales = codes.contiguous(), codebooks.contiguous(), scales.contiguous()
    bias = bias.to(x.dtype) if bias is not None else None
    if path.startswith("triton_gemv"):
        y = triton_gemv.triton_gemv(x2, codes, codebooks, scales, bias)
    elif path == "triton_dequant":
        from aqlm.kernels.triton_dequant import triton_dequantize

        y = F.linear(x2, triton_dequantize(codes, codebooks, scales, x.dtype), bias)
    elif path == "cpu_lut":
        y = cpu_lut.lut_linear(x2, codes, codebooks, scales, bias)
    else:
        y = F.linear(x2, _dequantize_in(codes, codebooks, scales, x.dtype), bias)
    return y.reshape(*x.shape[:-1], out_features)


def _dequantize_in(codes, codebooks, scales, dtype: torch.dtype) -> torch.Tensor:
    """:func:`dequantize` in ``dtype``, computed in the wider of ``dtype`` and the codebooks' dtype.

    fp16 codebooks (the stored format) with float32 activations are summed in float32, exactly as
    the same values held in float32 codebooks (what transformers loads them as) would be.
    """
    compute = torch.promote_types(codebooks.dtype, dtype)
    return dequantize(codes, codebooks.to(compute), scales.to(compute)).to(dtype)


def dequantize_fast(codes, codebooks, scales, dtype: torch.dtype | None = None, *, backend: str = "auto"):
    """:func:`dequantize` through the Triton kernel where it applies, in ``dtype``."""
    dtype = dtype or codebooks.dtype
    if (
        resolve_backend(backend, codes.device) == "triton"
        and codebooks.shape[2] == 1
        and dtype in _TRITON_DTYPES
    ):
        from aqlm.kernels.triton_dequant import triton_dequantize

        return triton_dequantize(codes.contiguous(), codebooks.contiguous(), scales.contiguous(), dtype)
    return _dequantize_in(codes, codebooks, scales, dtype)


def _check(x, codes, codebooks, scales, bias) -> None:
    if codebooks.dim() != 4:
        raise ValueError(
            f"codebooks must be [M, 2^B, out_group_size, in_group_size], got shape {tuple(codebooks.shape)}"
        )
    if codes.dim() != 3 or codes.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise ValueError(
            f"codes must be an integer tensor [out/out_g, in/g, M], got {codes.dtype} {tuple(codes.shape)}"
        )
    m, _, out_g, g = codebooks.shape
    o, i, cm = codes.shape
    if cm != m:
        raise ValueError(f"codes have {cm} codebooks per group, but the codebooks tensor has {m}")
    if x.shape[-1] != i * g:
        raise ValueError(
            f"in-features mismatch: x has {x.shape[-1]} features in its last dimension, but the codes "
            f"describe {i} groups of {g} = {i * g}"
        )
    if scales.numel() != o:
        raise ValueError(f"scales must have {o} entries (one per output group), got {scales.numel()}")
    if bias is not None and bias.numel() != o * out_g:
        raise ValueError(f"bias must have {o * out_g} entries (out_features), got {bias.numel()}")
    devices = {t.device for t in (x, codes, codebooks, scales, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(map(str, devices))}")


__all__ = [
    "PATHS",
    "aqlm_linear",
    "dequantize",
    "dequantize_fast",
    "linear",
    "linear_fast",
    "select_path",
    "signed_codes",
    "storage_dtype",
    "unsigned_codes",
]
