r"""Triton dequantization: the dense :math:`\hat W_{o, ig:(i+1)g} = s_o \sum_m C_m[b_{o,i,m}]`
for the many-token path (dequantize, then one cuBLAS GEMM), and for the backward pass.

One program writes a ``[block_o, block_i * g]`` tile; each code is one ``g``-wide gather from the
codebooks in global memory (L1/L2-resident: 4 KiB per 8-bit codebook, 1 MiB for 16 bits), summed
in float32 and rounded once to the output dtype. Any M, B, g with ``out_group_size = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.kernels.triton_guard import require_triton


@dataclass(frozen=True)
class DequantConfig:
    block_o: int
    block_i: int
    num_warps: int = 4
    cache: str = ""


# Chosen from a sweep on an H200 (benchmarks/bench_matvec.py --sweep): long thin tiles write
# whole 128-byte lines per row; keyed by 16-bit codes (B > 8) or not.
TUNING: dict[bool, DequantConfig] = {
    False: DequantConfig(16, 64),
    True: DequantConfig(16, 64),
}


def triton_dequantize(
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    dtype: torch.dtype | None = None,
    *,
    config: DequantConfig | None = None,
) -> torch.Tensor:
    """Dense ``[out, in]`` weight in ``dtype`` (default: the codebooks' dtype)."""
    require_triton(codes.device)
    o, i, m = codes.shape
    _, nc, out_g, g = codebooks.shape
    if out_g != 1:
        raise ValueError("triton_dequantize needs out_group_size == 1")
    w = torch.empty(o, i * g, dtype=dtype or codebooks.dtype, device=codes.device)
    if w.numel() == 0:
        return w
    cfg = config or TUNING[nc > 256]
    g_pad = 1 << (g - 1).bit_length()
    grid = (-(-o // cfg.block_o), -(-i // cfg.block_i))
    _kernels().dequant_kernel[grid](
        codes, codebooks, scales, w, o, i,
        M=m, NC=nc, G=g, G_PAD=g_pad, BLOCK_O=cfg.block_o, BI=cfg.block_i, CB_CACHE=cfg.cache,
        num_warps=cfg.num_warps,
    )  # fmt: skip
    return w


def _kernels():
    from aqlm.kernels import _gemv_triton

    return _gemv_triton
