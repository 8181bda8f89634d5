"""Fused kernels of the cache, with their torch references.

* :func:`decode_predict`: packed codes -> grid lookup -> inverse Hadamard -> scale -> + predictor
  (:mod:`aquakv.kernels.fused`; reference :func:`decode_predict_torch`);
* :func:`quantize_rows`: rows -> norms -> Hadamard -> nearest grid point -> packed codes
  (:mod:`aquakv.kernels.quantize`; reference :meth:`aquakv.quantizer.HiggsQuantizer.quantize`).

Both dispatch to Triton on CUDA (or under ``TRITON_INTERPRET=1`` with ``backend="triton"``) when
the quantizer is supported, else to the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from papercore.kernels.triton_guard import resolve_backend

if TYPE_CHECKING:  # aquakv.quantizer imports aquakv.kernels.hadamard: no import cycle at run time
    from aquakv.quantizer import QRows


def decode_predict_torch(rows: QRows, quantizer, x=None, weight=None, bias=None, out_dtype=torch.float32, *,
                         x2=None, rope=None, into=None):  # fmt: skip
    """Reference: ``dequantize(rows) + [x, x2] @ weight.T + bias`` in float32, cast to ``out_dtype``;
    optionally also written (RoPE-rotated when ``rope``) into ``into``."""
    out = quantizer.dequantize(rows, torch.float32)
    if weight is not None:
        lead = out.shape[:-1]
        xx = x if x2 is None else torch.cat([x.to(x2.dtype), x2], -1)
        out = torch.addmm(out.reshape(-1, out.shape[-1]) + bias.float(), xx.reshape(-1, xx.shape[-1]).float(),
                          weight.float().T).view(*lead, -1)  # fmt: skip
    out = out.to(out_dtype)
    if into is not None:
        _write_into(out, into, rope)
    return out


def _write_into(rows: torch.Tensor, into: torch.Tensor, rope) -> None:
    """Copy ``rows`` into ``into`` ``[B, T, C]``; with ``rope`` (cos, sin of ``[T, hd]``, or
    ``[B, T, hd]`` for per-row positions) rotate each head on the way."""
    from aquakv.rope import rotate

    src = rows.reshape(into.shape).float()
    if rope is not None:
        cos, sin = (t.float() for t in rope)
        hd = cos.shape[-1]
        heads = src.view(*src.shape[:-1], -1, hd)  # [B, T, H, hd]
        src = rotate(heads, cos.unsqueeze(-2), sin.unsqueeze(-2)).flatten(-2)
    into.copy_(src)


def fused_supported(quantizer, head_dim: int | None = None) -> bool:
    """Code widths dividing 32; Hadamard groups (and, for RoPE, head sizes) that the kernel's
    channel tile fits: 16 under the interpreter, 128 on the GPU."""
    from aquakv.kernels.fused import tile_n
    from aquakv.quantizer import HiggsQuantizer

    bn = tile_n()
    return (
        isinstance(quantizer, HiggsQuantizer)
        and quantizer.bits in (1, 2, 4, 8, 16)
        and quantizer.group % bn == 0
        and quantizer.group % quantizer.d == 0
        and (bn // quantizer.d) % (32 // quantizer.bits) == 0  # a tile's codes fill whole words
        and (head_dim is None or (bn % head_dim == 0 and head_dim % 2 == 0))
    )


def decode_predict(rows: QRows, quantizer, x=None, weight=None, bias=None, *, x2=None, rope=None, into=None,
                   backend: str = "auto", out_dtype=torch.float32) -> torch.Tensor:  # fmt: skip
    """Reconstruct rows ``[..., C]``: the predictor (if ``weight``) plus the dequantized residual.

    Parameters
    ----------
    x, x2 : Tensor, optional
        Predictor inputs ``[..., K1]`` and ``[..., K2]``, used as their concatenation (``x2`` may be None).
    weight, bias : Tensor, optional
        Predictor ``[C, K1 + K2]`` and ``[C]``.
    rope : (cos, sin), optional
        ``[T, head_dim]`` tables (or ``[B, T, head_dim]``: per-row positions, e.g. left padding);
        applied to the copy written into ``into`` only.
    into : Tensor, optional
        A ``[B, T, C]`` view (e.g. a slice of the layer's full key tensor) that also receives the
        reconstruction, cast to its dtype.
    """
    hd = rope[0].shape[-1] if (rope is not None and into is not None) else None
    fn = decode_predict_fn(quantizer, rows.codes.device, backend, hd)
    return fn(rows, quantizer, x, weight, bias, x2=x2, rope=rope, into=into, out_dtype=out_dtype)


def decode_predict_fn(quantizer, device, backend: str = "auto", head_dim: int | None = None):
    """The implementation :func:`decode_predict` dispatches to (callers on a hot path keep it)."""
    if (
        backend != "torch"
        and fused_supported(quantizer, head_dim)
        and resolve_backend(backend, device) == "triton"
    ):
        from aquakv.kernels.fused import decode_predict_triton

        return decode_predict_triton
    return decode_predict_torch


def quantize_rows(quantizer, x: torch.Tensor, *, backend: str = "auto") -> QRows:
    """``quantizer.quantize(x)``: through the fused Triton kernel where supported, else the reference."""
    from aquakv.kernels.quantize import quantize_supported

    if (
        backend != "torch"
        and quantize_supported(quantizer)
        and resolve_backend(backend, x.device) == "triton"
    ):
        from aquakv.kernels.quantize import quantize_triton

        return quantize_triton(quantizer, x)
    return quantizer.quantize(x)
