"""The split-K work list of the attention kernel (plain Python, no Triton import)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

TILE = 64  # keys per inner iteration of the kernel; chunks are multiples of it


def make_chunks(
    lengths: Sequence[int], loc: torch.Tensor, num_kv_heads: int, target_programs: int = 264
) -> torch.Tensor:
    """``[C, 3]`` int32 rows ``(block, first key, end key)`` covering every key some row can see.

    Keys a block shows to nobody (beyond ``max(loc[f]) + 1``) are left out. The chunk size is chosen
    so that ``C * rows * kv_heads`` is about ``target_programs`` (flash-decoding's split-K), in
    multiples of :data:`TILE`, and a chunk never spans two blocks.
    """
    f_count, rows = loc.shape[0], loc.shape[1]
    if f_count == 0:
        return torch.zeros(0, 3, dtype=torch.int32)
    tops = (loc.reshape(f_count, -1).amax(1) + 1).tolist() if loc[0].numel() else [0] * f_count
    visible = [max(0, min(int(n), int(top))) for n, top in zip(lengths, tops)]
    total = sum(visible)
    if total == 0:
        return torch.zeros(0, 3, dtype=torch.int32)
    want = max(1, -(-target_programs // max(1, rows * num_kv_heads)))
    size = max(TILE, -(-total // want))
    size = -(-size // TILE) * TILE
    out = []
    for f, n in enumerate(visible):
        for start in range(0, n, size):
            out.append((f, start, min(n, start + size)))
    return torch.tensor(out, dtype=torch.int32)
