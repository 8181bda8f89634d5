"""Launcher of the query-rotation attention kernels (:mod:`hogwild.kernels._triton`)."""

from __future__ import annotations

import math

import torch

from hogwild.kernels.chunks import TILE, chunk_table
from papercore.kernels.triton_guard import require_triton

SUPPORTED_HEAD_DIMS = (32, 64, 128, 256)
LOG2E = 1.4426950408889634


def triton_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_base: torch.Tensor,
    block_len: torch.Tensor,
    rot: torch.Tensor,
    limit: torch.Tensor,
    inv_freq: torch.Tensor,
    scale: float,
    *,
    chunks: torch.Tensor | None = None,
    target_programs: int | None = None,
) -> torch.Tensor:
    """Split-K query-rotation attention; same contract as :func:`hogwild.attention.reference_attention`.

    ``chunks`` is the ``[C, 3]`` work list (:func:`hogwild.kernels.chunk_table`, built on the device
    when omitted); the launch grid is ``(C, R, Hkv * M tiles)``, read from shapes only, and nothing is
    read back from the device, so a call can be captured in a CUDA graph.
    """
    require_triton(q.device)
    from hogwild.kernels import _triton

    r, hq, s, d = q.shape
    hkv, _, dv = v_pool.shape
    if d not in SUPPORTED_HEAD_DIMS or dv not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"the Triton kernel supports head dims {SUPPORTED_HEAD_DIMS}, got {d} (values {dv})")
    if k_pool.dtype != q.dtype or v_pool.dtype != q.dtype:
        raise ValueError(
            f"q, keys and values must share a dtype, got {q.dtype}, {k_pool.dtype}, {v_pool.dtype}"
        )
    if k_pool.stride(-1) != 1 or v_pool.stride(-1) != 1:
        raise ValueError("keys and values must be contiguous in the head dimension")
    q = q if q.stride(-1) == 1 else q.contiguous()
    g = hq // hkv
    if chunks is None:
        if target_programs is None:
            sms = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 4
            target_programs = 2 * sms
        chunks = chunk_table(block_len, limit, hkv, target_programs)
    chunks = chunks.to(device=q.device, dtype=torch.int32).contiguous()
    n_chunks = chunks.shape[0]
    if n_chunks == 0:
        return torch.zeros(r, hq, s, dv, dtype=q.dtype, device=q.device)
    out = torch.empty(r, hq, s, dv, dtype=q.dtype, device=q.device)  # the reduce writes every row
    rows_m = g * s
    block_m = 16 if rows_m <= 16 else (32 if rows_m <= 32 else 64)
    m_tiles = math.ceil(rows_m / block_m)
    block_n = 32 if d >= 256 else TILE
    op = torch.empty(n_chunks, r, hq, s, dv, dtype=torch.float32, device=q.device)
    lsep = torch.empty(n_chunks, r, hq, s, dtype=torch.float32, device=q.device)
    rot32 = rot.to(device=q.device, dtype=torch.int32).contiguous()
    lim32 = limit.to(device=q.device, dtype=torch.int32).contiguous()
    base = block_base.to(device=q.device, dtype=torch.int32).contiguous()
    invf = inv_freq.to(device=q.device, dtype=torch.float32).contiguous()
    _triton.hogwild_split_kernel[(n_chunks, r, hkv * m_tiles)](
        q, k_pool, v_pool, base, rot32, lim32, invf, chunks, op, lsep,
        scale * LOG2E, r, s, hq, m_tiles,
        q.stride(0), q.stride(1), q.stride(2),
        k_pool.stride(0), k_pool.stride(1), v_pool.stride(0), v_pool.stride(1),
        G=g, HALF=d // 2, DV=dv, BLOCK_M=block_m, BLOCK_N=block_n, IEEE=q.dtype == torch.float32,
        num_warps=4, num_stages=2,
    )  # fmt: skip
    rows = r * hq * s
    _triton.lse_reduce_kernel[(rows,)](op, lsep, out, n_chunks, rows, DV=dv, num_warps=1)
    return out
