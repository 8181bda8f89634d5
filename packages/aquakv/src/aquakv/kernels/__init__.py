"""Fused kernels of the cache, with their torch references.

* :func:`decode_predict`: packed codes -> grid lookup -> inverse Hadamard -> scale -> + predictor
  (:mod:`aquakv.kernels.fused`; reference :func:`decode_predict_torch`);
* :func:`quantize_rows`: rows -> norms -> Hadamard -> nearest grid point -> packed codes
  (:mod:`aquakv.kernels.quantize`; reference :meth:`aquakv.quantizer.HiggsQuantizer.quantize`).

Both dispatch to Triton on CUDA (or under ``TRITON_INTERPRET=1`` with ``backend="triton"``) when
the quantizer is supported, else to the reference.
"""

from __future__ import annotations

import torch

from aquakv.quantizer import HiggsQuantizer, QRows
from papercore.kernels.triton_guard import resolve_backend


def decode_predict_torch(rows: QRows, quantizer, x=None, weight=None, bias=None, out_dtype=torch.float32):
    """Reference: ``dequantize(rows) + x @ weight.T + bias`` in float32."""
    out = quantizer.dequantize(rows, torch.float32)
    if weight is not None:
        lead = out.shape[:-1]
        out = torch.addmm(out.reshape(-1, out.shape[-1]) + bias.float(), x.reshape(-1, x.shape[-1]).float(),
                          weight.float().T).view(*lead, -1)  # fmt: skip
    return out.to(out_dtype)


def fused_supported(quantizer) -> bool:
    """Code widths dividing 32; Hadamard groups the kernel's tiles divide (16 under the interpreter, 128 on GPU)."""
    from papercore.kernels.triton_guard import interpreter_enabled

    min_group = 16 if interpreter_enabled() else 128
    return (
        isinstance(quantizer, HiggsQuantizer)
        and quantizer.bits in (1, 2, 4, 8, 16)
        and quantizer.group >= min_group
        and quantizer.group % quantizer.d == 0
    )


def decode_predict(rows: QRows, quantizer, x=None, weight=None, bias=None, *, backend: str = "auto",
                   out_dtype=torch.float32) -> torch.Tensor:  # fmt: skip
    """Reconstruct rows ``[..., C]``: the predictor (if ``weight``) plus the dequantized residual."""
    if (
        backend != "torch"
        and fused_supported(quantizer)
        and resolve_backend(backend, rows.codes.device) == "triton"
    ):
        from aquakv.kernels.fused import decode_predict_triton

        return decode_predict_triton(rows, quantizer, x, weight, bias, out_dtype=out_dtype)
    return decode_predict_torch(rows, quantizer, x, weight, bias, out_dtype)


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
