r"""Triton matrix-vector kernels for a few tokens (decoding): :math:`y = x \hat W^T + b` without
building :math:`\hat W`.

Three kernels, picked by :func:`gemv_kernel` from the code layout (``out_group_size = 1``):

``"lut"`` (:math:`B \le 8`: 2x8g8, 1x8g8, 4x8g8, ...; up to 4 tokens)
    Two launches. The first builds the lookup table :math:`L[i, m, c, t] = x_{t,i} \cdot C_m[c]`
    for the whole input (small tensor-core products; 512 KiB in fp16 for a 4096-wide 2x8 layer),
    the second sums :math:`y_{t,o} = s_o \sum_{i,m} L[i, m, b_{o,i,m}, t]`: one thread per output
    row, so the 32 gathers of a warp instruction fall in one table row of :math:`2^B` entries (a
    few cache lines, L1-resident), with the codes of the next step loaded one step ahead.
``"1x16"`` (M = 1, B = 16, g = 8 or 16)
    The direct kernel with the settings tuned for a 1 MiB codebook: it stays in L2 (codes are
    streamed with ``evict_first``), each code is one 16-byte gather.
``"direct"`` (anything else)
    Decodes :math:`\sum_m C_m[b_{o,i,m}]` from the codebooks in global memory, any M, B, g.

All three split the input groups over several programs when there are too few row blocks to fill
the GPU (split-K); the last program of a row block sums the partials, in the same launch.
Accumulation is in float32; the result is rounded once to ``x.dtype``.

Speed: see docs/benchmarks/aqlm.md (benchmarks/bench_matvec.py). The 1x16 kernel is limited by
random 32-byte sector reads from L2 (about 4 TB/s of sectors, whatever the launch settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from papercore.kernels.splitk import split_plan, splitk_workspace
from papercore.kernels.triton_guard import interpreter_enabled, require_triton

MAX_TOKENS = 8  # the GEMV kernels take up to this many tokens; more go through dequantize + GEMM
LUT_MAX_TOKENS = 4  # the lookup kernel gathers up to this many tokens per table entry


@dataclass(frozen=True)
class GemvConfig:
    """Launch settings. ``block_i``: input groups per tile (the lookup kernel: codes per row and
    step, 16 or 32); ``split``: programs along the input dimension (0: enough for
    ``programs_per_sm`` programs per SM in all); ``cache``: cache modifier of the codebook gathers."""

    block_o: int
    block_i: int
    num_warps: int = 4
    num_stages: int = 2
    split: int = 0
    programs_per_sm: int = 2
    cache: str = ""


# Keyed by (kernel, padded tokens). "1x16" and "direct": from sweeps on an H200
# (benchmarks/bench_matvec.py --sweep); they run several tokens' product with 16 padded token rows.
# "lut": the best of a sweep of a development version of the lookup kernel on an H100 (256 rows per
# program, two 16-byte code vectors per step, about 3 programs per SM through split-K).
TUNING: dict[tuple[str, int], GemvConfig] = {
    ("lut", 1): GemvConfig(256, 32, 8, programs_per_sm=3),
    ("lut", 2): GemvConfig(256, 32, 8, programs_per_sm=3),
    ("lut", 4): GemvConfig(256, 32, 8, programs_per_sm=3),
    ("1x16", 1): GemvConfig(32, 32, 4, cache=".cg"),
    ("1x16", 16): GemvConfig(128, 8, 4),
    ("direct", 1): GemvConfig(64, 16, 4),
    ("direct", 16): GemvConfig(128, 8, 4),
}
# Token limits of the GEMV path per kernel (past them: dequantize + GEMM).
MAX_TOKENS_BY_KERNEL = {"lut": LUT_MAX_TOKENS, "1x16": MAX_TOKENS, "direct": MAX_TOKENS}


def gemv_kernel(codes: torch.Tensor, codebooks: torch.Tensor) -> str:
    """Which GEMV kernel serves this code layout: ``"lut"``, ``"1x16"`` or ``"direct"``."""
    m, nc, out_g, g = codebooks.shape
    if out_g != 1:
        raise ValueError("the Triton GEMV kernels need out_group_size == 1")
    if 16 <= nc <= 256 and (codes.shape[1] * m) % 16 == 0:
        return "lut"
    if m == 1 and nc == 1 << 16 and g in (8, 16):
        return "1x16"
    return "direct"


def triton_gemv(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    kernel: str | None = None,
    config: GemvConfig | None = None,
) -> torch.Tensor:
    """``F.linear(x, dequantize(codes, codebooks, scales), bias)`` for ``x [T, in]``, ``T <= 8``.

    ``kernel`` and ``config`` override the automatic choice (tests and tuning).
    """
    require_triton(x.device)
    t = x.shape[0]
    o, i, m = codes.shape
    _, nc, _, g = codebooks.shape
    if t > MAX_TOKENS:
        raise ValueError(f"triton_gemv takes at most {MAX_TOKENS} tokens, got {t}")
    kernel = kernel or gemv_kernel(codes, codebooks)
    if kernel == "lut" and t > LUT_MAX_TOKENS:
        raise ValueError(f"the lookup kernel takes at most {LUT_MAX_TOKENS} tokens, got {t}")
    x = x.contiguous()
    y = torch.empty(t, o, dtype=x.dtype, device=x.device)
    if t == 0:
        return y
    t_pad = 1 << (t - 1).bit_length()
    # float32 products unless x and the codebooks share one 16-bit dtype
    fp32 = not (x.dtype == codebooks.dtype and x.dtype in (torch.float16, torch.bfloat16))
    if kernel == "lut":
        _lut_gemv(x, codes, codebooks, scales, bias, y, config or _config("lut", t_pad), t_pad, fp32)
        return y
    td = 1 if t == 1 else 16  # the direct kernel's dot needs >= 16 rows
    cfg = config or _config(kernel, td)
    n_oblocks = -(-o // cfg.block_o)
    split, tiles_per_split = split_plan(
        -(-i // cfg.block_i), n_oblocks, cfg.split, cfg.programs_per_sm, x.device
    )
    part, count = splitk_workspace(split, (t, o), n_oblocks, x.device)
    _kernels().direct_gemv_kernel[(n_oblocks, split)](
        x, codes, codebooks, scales, bias if bias is not None else scales, y, part, count,
        t, o, i, tiles_per_split, split, x.stride(0), y.stride(0),
        M=m, NC=nc, G=g, G_PAD=_pow2(g), TD=td, BLOCK_O=cfg.block_o, BI=cfg.block_i, SPLIT_K=split > 1,
        HAS_BIAS=bias is not None, FP32=fp32, CB_CACHE=cfg.cache, num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )  # fmt: skip
    return y


def _lut_gemv(x, codes, codebooks, scales, bias, y, cfg: GemvConfig, t_pad: int, fp32: bool) -> None:
    """The two launches of the lookup path (see the module doc)."""
    t = x.shape[0]
    o, i, m = codes.shape
    _, nc, _, g = codebooks.shape
    im = i * m
    u = 2 if cfg.block_i >= 32 and im % 32 == 0 else 1
    # fp16 entries for fp16 inputs (the table is read once per code); float32 otherwise (bf16 has too few bits)
    lut = torch.empty(im * nc * t_pad, dtype=torch.float16 if x.dtype == torch.float16 else torch.float32,
                      device=x.device)  # fmt: skip
    bi = max(1, 16 // t_pad)  # the table product needs >= 16 rows
    k = _kernels()
    k.lut_build_kernel[(-(-i // bi), m)](
        x, codebooks, lut, t, i, x.stride(0), M=m, NC=nc, G=g, KD=max(16, _pow2(g)), BI=bi, T_PAD=t_pad,
        FP32=fp32, num_warps=4,
    )  # fmt: skip
    n_oblocks = -(-o // cfg.block_o)
    split, chunks_per_split = split_plan(im // (16 * u), n_oblocks, cfg.split, cfg.programs_per_sm, x.device)
    part, count = splitk_workspace(split, (t_pad, o), n_oblocks, x.device)
    k.lut_gemv_kernel[(n_oblocks, split)](
        lut, codes, scales, bias if bias is not None else scales, y, part, count,
        t, o, im, chunks_per_split, split, y.stride(0),
        NC=nc, T_PAD=t_pad, BLOCK_O=cfg.block_o, U=u, SPLIT_K=split > 1, HAS_BIAS=bias is not None,
        num_warps=cfg.num_warps,
    )  # fmt: skip


def _config(kernel: str, td: int) -> GemvConfig:
    cfg = TUNING[(kernel, td if kernel == "lut" else min(td, 16))]
    if interpreter_enabled():
        # Few, large programs run fastest in the interpreter; split in two so that the
        # split-K reduction is exercised by the CPU tests.
        return replace(cfg, block_o=min(cfg.block_o, 64), split=2, num_warps=min(cfg.num_warps, 2))
    return cfg


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))


_KERNELS = None


def _kernels():
    """Compile-on-first-use: Triton is imported only when a Triton path runs."""
    global _KERNELS
    if _KERNELS is None:
        from aqlm.kernels import _gemv_triton

        _KERNELS = _gemv_triton
    return _KERNELS
