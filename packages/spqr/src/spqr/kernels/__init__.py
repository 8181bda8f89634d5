"""Kernels behind :class:`spqr.QuantizedLinear`.

:func:`spqr_linear` picks the path by device, dtype and number of tokens; every path equals
``F.linear(x, layer.dequantize().to(x.dtype), bias)`` (the reference in
:mod:`spqr.quantized_linear`).

==================  ===============================================================================
path                when
==================  ===============================================================================
``triton_gemv``     Triton, few tokens. Layers that hold the kernel layout (``layer.layout ==
                    "kernel"``, :mod:`spqr.kernels.layout`: 2-4-bit codes, the default or fp16
                    statistics, power-of-two groups) up to ``FAST_MAX_TOKENS`` (4): the fast kernel
                    (:mod:`spqr.kernels._fast`) decodes each code once for all tokens with the
                    statistics factored out of the inner loop, and adds the outlier corrections
                    ``(v - w_dense) * x[:, c]`` (outliers REPLACE the dense value) in the same launch.
                    Layers in the stored format up to 16 tokens (power-of-two groupsize): the generic
                    kernel on the stored bitstreams
``triton_dequant``  Triton, more tokens (or another groupsize): a Triton kernel writes the dense
                    weight in ``x.dtype`` (outliers replaced by a second small kernel), then ``F.linear``
                    (with the kernel layout: in the permuted column order, against ``x[:, perm]``)
``dequant``         everything else (CPU, ``backend="torch"``, float64, ...): the torch reference
==================  ===============================================================================

"Triton" means CUDA tensors with ``backend="auto"`` (fp16, bf16 or fp32 activations), or
``backend="triton"``, which also runs the kernels on CPU tensors under ``TRITON_INTERPRET=1`` (fp32
and fp16 there: the interpreter has no bf16 math). Accumulation is float32; the dense weight is rounded
to ``x.dtype`` before it multiplies ``x``, as the reference does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from papercore.kernels.triton_guard import interpreter_enabled, resolve_backend
from spqr.kernels.triton_ops import FAST_MAX_TOKENS, MAX_TOKENS, gemv_supported

PATHS = ("triton_gemv", "triton_dequant", "dequant")
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def select_path(x: torch.Tensor, layer, backend: str = "auto") -> str:
    """Name of the path :func:`spqr_linear` takes for these inputs (one of :data:`PATHS`)."""
    cpu = interpreter_enabled() and x.device.type == "cpu"
    dtypes = (torch.float32, torch.float16) if cpu else _TRITON_DTYPES
    if resolve_backend(backend, x.device) != "triton" or x.dtype not in dtypes:
        return "dequant"
    if layer.in_features % layer.groupsize:
        return "dequant"
    tokens = math.prod(x.shape[:-1])
    if (
        getattr(layer, "layout", "stored") == "kernel"
    ):  # its GEMV up to FAST_MAX_TOKENS, then dequantize + GEMM
        return "triton_gemv" if tokens <= FAST_MAX_TOKENS else "triton_dequant"
    if tokens <= MAX_TOKENS and gemv_supported(layer):
        return "triton_gemv"
    return "triton_dequant"


def spqr_linear(
    x: torch.Tensor,
    layer,
    bias: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    inv_perm: torch.Tensor | None = None,
) -> torch.Tensor:
    """``y = x Ŵᵀ + bias`` with ``Ŵ = layer.dequantize()``, without building ``Ŵ`` for few tokens.

    Parameters
    ----------
    x : Tensor ``[..., in_features]``
    layer : :class:`spqr.quantized_linear.QuantizedLinear` (or any object with its buffers
        ``codes, perm, scale*/zero*, outlier_*`` and attributes ``in_features, out_features, wbits,
        groupsize, qq_groupsize, qq_scale_bits, qq_zero_bits, sym`` and, for the torch path, ``dequantize()``)
    bias : Tensor ``[out_features]`` or None (cast to ``x.dtype``)
    backend : {"auto", "triton", "torch"}
        See the module docstring; :func:`select_path` tells which path runs.
    inv_perm : Tensor, optional
        The inverse of ``layer.perm`` (see :func:`spqr.kernels.triton_ops.invert_perm`); the GEMV
        path builds it per call (one tiny launch) when the layer has outliers and it is None.

    Returns
    -------
    Tensor ``[..., out_features]`` in ``x.dtype``. Differentiable in ``x`` and ``bias`` (the stored
    weight is frozen); the backward pass multiplies by the dense weight.
    """
    if x.shape[-1] != layer.in_features:
        raise ValueError(f"x has {x.shape[-1]} features in its last dimension, the layer {layer.in_features}")
    if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
        return _SpQRLinearFunction.apply(x, bias, layer, backend, inv_perm)
    return _linear(x, layer, bias, backend, inv_perm)


class _SpQRLinearFunction(torch.autograd.Function):
    """Gradients in ``x`` and ``bias`` (the stored weight is frozen): ``dx = dy Ŵ``, ``db = sum dy``."""

    @staticmethod
    def forward(ctx, x, bias, layer, backend, inv_perm):
        ctx.layer, ctx.backend, ctx.bias_dtype = layer, backend, None if bias is None else bias.dtype
        return _linear(x, layer, bias, backend, inv_perm)

    @staticmethod
    def backward(ctx, dy):
        dx = db = None
        if ctx.needs_input_grad[0]:
            dx = dy @ _dense(dy, ctx.layer, ctx.backend)
        if ctx.needs_input_grad[1]:
            db = dy.reshape(-1, dy.shape[-1]).sum(0).to(ctx.bias_dtype)
        return dx, db, None, None, None


def _dense(x: torch.Tensor, layer, backend: str) -> torch.Tensor:
    """``layer.dequantize()`` in ``x.dtype``, through the Triton kernel where a Triton path applies."""
    if select_path(x, layer, backend) != "dequant":
        from spqr.kernels.triton_ops import triton_dequantize

        return triton_dequantize(layer, x.dtype)
    return layer.dequantize().to(x.dtype)


def _linear(x, layer, bias, backend, inv_perm) -> torch.Tensor:
    path = select_path(x, layer, backend)
    bias = bias.to(x.dtype) if bias is not None else None
    x2 = x.reshape(-1, x.shape[-1])
    if path == "triton_gemv":
        from spqr.kernels.triton_ops import triton_gemv

        y = triton_gemv(x2, layer, bias, inv_perm=inv_perm)
    elif path == "triton_dequant":
        from spqr.kernels.triton_ops import fast_linear_dequant, triton_dequantize

        if getattr(layer, "layout", "stored") == "kernel":
            y = fast_linear_dequant(x2, layer, bias)
        else:
            y = F.linear(x2, triton_dequantize(layer, x.dtype), bias)
    else:
        y = F.linear(x2, layer.dequantize().to(x.dtype), bias)
    return y.reshape(*x.shape[:-1], layer.out_features)


__all__ = ["PATHS", "select_path", "spqr_linear"]
