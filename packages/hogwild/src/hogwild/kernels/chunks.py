"""The split-K work list of the attention kernel (plain torch, no Triton import).

:func:`chunk_table` builds it on the device with tensor ops only, in a table whose size depends
only on the step's structure (blocks, rows, kv heads), so the kernel's launch grid is fixed while
the blocks grow and a decode step can be captured in a CUDA graph. :func:`make_chunks` is the same
work list built on the host, without the padding (a reference, and for callers that want it short).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TILE = 64  # keys per inner iteration of the kernel; chunks are multiples of it


def _splits(rows: int, num_kv_heads: int, target_programs: int) -> int:
    """Chunks aimed at so that ``chunks * rows * kv_heads`` is about ``target_programs``."""
    return max(1, -(-target_programs // max(1, rows * num_kv_heads)))


def chunk_capacity(num_blocks: int, rows: int, num_kv_heads: int, target_programs: int = 264) -> int:
    """Rows of :func:`chunk_table`: the split count aimed at plus one per block (each block's last,
    partial chunk). It depends on the step's structure only, never on the block lengths."""
    return _splits(rows, num_kv_heads, target_programs) + num_blocks if num_blocks else 0


def make_chunks(
    lengths: Sequence[int], loc: torch.Tensor, num_kv_heads: int, target_programs: int = 264
) -> torch.Tensor:
    """``[C, 3]`` int32 rows ``(block, first key, end key)`` covering every key some row can see.

    Keys a block shows to nobody (beyond ``max(loc[f]) + 1``) are left out. The chunk size is chosen
    so that ``C * rows * kv_heads`` is about ``target_programs`` (flash-decoding's split-K), in
    multiples of :data:`TILE`, and a chunk never spans two blocks. Built on the host (it reads
    ``loc``); :func:`chunk_table` is the device version with a fixed number of rows.
    """
    f_count, rows = loc.shape[0], loc.shape[1]
    if f_count == 0:
        return torch.zeros(0, 3, dtype=torch.int32)
    tops = (loc.reshape(f_count, -1).amax(1) + 1).tolist() if loc[0].numel() else [0] * f_count
    visible = [max(0, min(int(n), int(top))) for n, top in zip(lengths, tops)]
    total = sum(visible)
    if total == 0:
        return torch.zeros(0, 3, dtype=torch.int32)
    want = _splits(rows, num_kv_heads, target_programs)
    size = max(TILE, -(-total // want))
    size = -(-size // TILE) * TILE
    out = []
    for f, n in enumerate(visible):
        for start in range(0, n, size):
            out.append((f, start, min(n, start + size)))
    return torch.tensor(out, dtype=torch.int32)


def chunk_table(
    lengths: torch.Tensor, loc: torch.Tensor, num_kv_heads: int, target_programs: int = 264
) -> torch.Tensor:
    """:func:`make_chunks` computed on ``loc``'s device, padded with empty chunks ``(0, 0, 0)`` to
    :func:`chunk_capacity` rows.

    Tensor ops only: no value is read back to the host, and the shape depends on the structure
    (``F`` blocks, ``R`` rows, kv heads, ``target_programs``), not on the lengths. The kernel runs
    an empty chunk as a program that stores one ``-inf`` log-sum-exp per row and nothing else.

    Parameters
    ----------
    lengths : ``[F]`` block lengths (any integer dtype), on the device.
    loc : ``[F, R, S]`` query positions relative to each block's start (``-1``: hidden).
    """
    f_count, rows = loc.shape[0], loc.shape[1]
    cap = chunk_capacity(f_count, rows, num_kv_heads, target_programs)
    dev = loc.device
    if cap == 0 or loc[0].numel() == 0:
        return torch.zeros(cap, 3, dtype=torch.int32, device=dev)
    want = _splits(rows, num_kv_heads, target_programs)
    top = loc.reshape(f_count, -1).amax(1).long() + 1
    visible = torch.minimum(lengths.to(device=dev, dtype=torch.long), top).clamp_min(0)  # [F]
    size = (visible.sum() + want - 1) // want
    size = (size.clamp_min(TILE) + TILE - 1) // TILE * TILE  # 0-dim: keys per chunk
    count = (visible + size - 1) // size  # [F] chunks per block; their sum is at most want + F
    ends = count.cumsum(0)
    c = torch.arange(cap, device=dev)
    f = torch.searchsorted(ends, c, right=True)  # block of chunk c (F: padding)
    real = f < f_count
    f = f.clamp_max(f_count - 1)
    start = (c - (ends - count)[f]) * size
    end = torch.minimum(start + size, visible[f])
    table = torch.stack([f, start, end], dim=1)
    return torch.where(real[:, None], table, 0).to(torch.int32)
