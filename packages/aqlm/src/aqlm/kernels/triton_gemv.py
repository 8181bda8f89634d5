r"""Triton matrix-vector kernels for a few tokens (decoding): :math:`y = x \hat W^T + b` without
building :math:`\hat W`.

Three kernels, picked by :func:`gemv_kernel` from the code layout (``out_group_size = 1``):

``"lut"`` (:math:`B \le 8`: 2x8g8, 1x8g8, 4x8g8, ...)
    Per tile of input groups, a lookup table :math:`L[t, i, m, c] = x_{t,i} \cdot C_m[c]` is one
    small tensor-core product; the table sits in shared memory and each code costs one 4-byte
    lookup per token, :math:`y_{t,o} = s_o \sum_{i,m} L[t, i, m, b_{o,i,m}]`. (Triton gathers from
    shared memory one scalar at a time, so this beats keeping the codebooks there and decoding
    ``g`` values per code.)
``"1x16"`` (M = 1, B = 16, g = 8 or 16)
    The direct kernel with the settings tuned for a 1 MiB codebook: it stays in L2 (codes are
    streamed with ``evict_first``), each code is one 16-byte gather.
``"direct"`` (anything else)
    Decodes :math:`\sum_m C_m[b_{o,i,m}]` from the codebooks in global memory, any M, B, g.

All three split the input groups over several programs when there are too few row blocks to fill
the GPU (split-K); the last program of a row block sums the partials, in the same launch.
Accumulation is in float32; the result is rounded once to ``x.dtype``.

Speed (H200, batch 1, Llama-2 gate_proj shapes, vs fp16 ``F.linear``; benchmarks/bench_matvec.py):
1x8g8 1.4-1.55x, 2x8g8 0.68-0.72x, 1x16g8 0.53-0.55x. None is limited by DRAM (under 10% of the
copy bandwidth): the lookup kernel by shared-memory traffic (scalar lookups with random bank
conflicts, the table written in the tensor-core accumulator layout), the 1x16 kernel by random
32-byte sector reads from L2 (about 4 TB/s of sectors, whatever the launch settings).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch

from papercore.kernels.triton_guard import interpreter_enabled, require_triton

MAX_TOKENS = 8  # the GEMV kernels take up to this many tokens; more go through dequantize + GEMM
_LUT_MAX_COLUMNS = 1024  # M_pad * 2^B: the per-tile table must fit in shared memory


@dataclass(frozen=True)
class GemvConfig:
    """Launch settings. ``block_i``: input groups per tile; ``split``: programs along the input
    dimension (0: enough for ``programs_per_sm`` programs per SM in all); ``cache``: cache
    modifier of the codebook gathers."""

    block_o: int
    block_i: int
    num_warps: int = 4
    num_stages: int = 2
    split: int = 0
    programs_per_sm: int = 2
    cache: str = ""


# Chosen from sweeps on an H200 (benchmarks/bench_matvec.py --sweep), keyed by (kernel, padded
# tokens). "1x16" and "direct" with several tokens run their product with 16 padded token rows.
TUNING: dict[tuple[str, int], GemvConfig] = {
    ("lut", 1): GemvConfig(256, 32, 8, programs_per_sm=1),
    ("lut", 2): GemvConfig(256, 16, 8, programs_per_sm=1),
    ("lut", 4): GemvConfig(256, 8, 8, programs_per_sm=1),
    ("lut", 8): GemvConfig(256, 2, 4),
    ("1x16", 1): GemvConfig(32, 32, 4, cache=".cg"),
    ("1x16", 16): GemvConfig(128, 8, 4),
    ("direct", 1): GemvConfig(64, 16, 4),
    ("direct", 16): GemvConfig(128, 8, 4),
}
# Token limits of the GEMV path per kernel: the lookup kernel does one lookup per code *and
# token*, so past 4 tokens dequantize + GEMM is faster (measured at 8 tokens on an H200).
MAX_TOKENS_BY_KERNEL = {"lut": 4, "1x16": MAX_TOKENS, "direct": MAX_TOKENS}


def gemv_kernel(codes: torch.Tensor, codebooks: torch.Tensor) -> str:
    """Which GEMV kernel serves this code layout: ``"lut"``, ``"1x16"`` or ``"direct"``."""
    m, nc, out_g, g = codebooks.shape
    if out_g != 1:
        raise ValueError("the Triton GEMV kernels need out_group_size == 1")
    if nc <= 256 and 16 <= _pow2(m) * nc <= _LUT_MAX_COLUMNS:
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
    x = x.contiguous()
    y = torch.empty(t, o, dtype=x.dtype, device=x.device)
    if t == 0:
        return y
    t_pad = 1 << (t - 1).bit_length()
    td = t_pad if kernel == "lut" or t == 1 else 16  # the direct kernel's dot needs >= 16 rows
    cfg = config or _config(kernel, td)
    if kernel == "lut":
        cfg = replace(cfg, block_i=max(cfg.block_i, 16 // t_pad))  # the table product needs >= 16 rows
    n_tiles = -(-i // cfg.block_i)
    n_oblocks = -(-o // cfg.block_o)
    split = min(cfg.split or _auto_split(n_oblocks, cfg.programs_per_sm, x.device), n_tiles)
    tiles_per_split = -(-n_tiles // split)
    split = -(-n_tiles // tiles_per_split)  # no empty programs
    part = torch.empty((split, t, o) if split > 1 else (1,), dtype=torch.float32, device=x.device)
    count = _counters(x.device, n_oblocks) if split > 1 else part
    fp32 = not (x.dtype == codebooks.dtype and x.dtype in (torch.float16, torch.bfloat16))
    args = (x, codes, codebooks, scales, bias if bias is not None else scales, y, part, count,
            t, o, i, tiles_per_split, split, x.stride(0), y.stride(0))  # fmt: skip
    common = dict(NC=nc, G=g, BLOCK_O=cfg.block_o, BI=cfg.block_i, SPLIT_K=split > 1, HAS_BIAS=bias is not None,
                  FP32=fp32, num_warps=cfg.num_warps, num_stages=cfg.num_stages)  # fmt: skip
    kernels = _kernels()
    if kernel == "lut":
        kd = max(16, _pow2(g))
        kernels.lut_gemv_kernel[(n_oblocks, split)](*args, M=m, M_PAD=_pow2(m), KD=kd, T_PAD=t_pad, **common)
    else:
        kernels.direct_gemv_kernel[(n_oblocks, split)](
            *args, M=m, G_PAD=_pow2(g), TD=td, CB_CACHE=cfg.cache, **common
        )
    return y


def _config(kernel: str, td: int) -> GemvConfig:
    cfg = TUNING[(kernel, td if kernel == "lut" else min(td, 16))]
    if interpreter_enabled():
        # Few, large programs run fastest in the interpreter; split in two so that the
        # split-K reduction is exercised by the CPU tests.
        return replace(cfg, block_o=min(cfg.block_o, 64), split=2)
    return cfg


def _auto_split(n_oblocks: int, programs_per_sm: int, device: torch.device) -> int:
    target = programs_per_sm * _sm_count(device)
    return max(1, min(16, round(target / n_oblocks)))


@functools.cache
def _sm_count_cached(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 2
    return _sm_count_cached(device.index if device.index is not None else torch.cuda.current_device())


_COUNTERS: dict[tuple, torch.Tensor] = {}


def _counters(device: torch.device, n: int) -> torch.Tensor:
    """Arrival counters of the split-K reduction, one per row block, zero between launches.

    The last program of a row block resets its counter, so the buffer is zeroed once; one buffer
    per stream keeps concurrent launches on different streams apart.
    """
    stream = torch.cuda.current_stream(device).stream_id if device.type == "cuda" else 0
    key = (str(device), stream)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        buf = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _COUNTERS[key] = buf
    return buf


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
