r"""Fused nearest-code search: :math:`\arg\min_k\, a_k - 2 \langle c_k, u_n \rangle` for every row of
``u [N, D]`` against ``cb [K, D]``, ``a [K]``, without materialising the ``N x K`` scores.

The unfused form (:func:`aqlm.engine._argmin_scores_torch`: ``addmm``, then ``argmin``) writes every
score to memory and reads it back; with ``D`` of 4 to 32 that traffic, not the arithmetic, bounds
its speed. Here each program owns ``BLOCK_N`` rows of ``u`` and walks the codes in tiles of
``BLOCK_K``: a score tile is ``a`` plus ``D`` float32 FMAs, compared elementwise with a running
``[BLOCK_N, BLOCK_K]`` minimum (and the tile it came from), and reduced across the tile's columns
once at the end. Only ``u``, the codebook (L2-resident: 2 MiB for 65536 x 8) and the indices touch
memory.

Scores are exact float32 FMA chains starting from :math:`a_k` (:math:`-2 u` is exact), so for inputs
whose products and sums are exact in float32 (small integers, say) the result equals
``torch.argmin`` of the same scores, ties included: the first (smallest) index wins. Otherwise
scores may differ from ``torch.addmm``'s in the last bits, so a near-tie can go either way.

This module imports Triton; :mod:`aqlm.engine` imports it only for CUDA tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from papercore.kernels.triton_guard import interpreter_enabled, require_triton


@dataclass(frozen=True)
class NearestConfig:
    """Launch settings: rows of ``u`` and codes per tile, warps per program."""

    block_n: int
    block_k: int
    num_warps: int = 4


def default_config(num_codes: int, dim: int) -> NearestConfig:
    """Launch settings for ``K = num_codes`` codes of ``D = dim`` values (no autotuning)."""
    if interpreter_enabled():
        # One numpy op per tile in the interpreter: few, wide tiles run fastest there; 64 codes per
        # tile still gives several tiles (and a ragged last one) at the tests' sizes.
        return NearestConfig(64, 64, 1)
    # Triton's default layout of the [BLOCK_N, BLOCK_K] score tile spreads the codes over all the
    # threads first: a thread holds BLOCK_N rows x BLOCK_K / (32 num_warps) codes, here 8 x 4 for
    # D <= 8 (4 x 4 above): 8 FMAs per loaded codebook value, and the running minimum, its tile
    # index and the hoisted rows of u fit in registers without spills (196 registers for D = 8).
    rows = 8 if dim <= 8 else 4
    block_k = min(512, max(32, triton.next_power_of_2(num_codes)))
    return NearestConfig(rows, block_k, max(1, block_k // 128))


@triton.jit
def _argmin_scores_kernel(
    u_ptr, cbt_ptr, a_ptr, out_ptr, N, K,
    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """out[n] = argmin_k a[k] - 2 <cbt[:, k], u[n]>, first index on ties.

    u: [N, D] row-major; cbt: [D, K] (the codebook transposed, so a tile's codes are contiguous).
    """
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    u_rows = u_ptr + offs_n.to(tl.int64) * D  # N * D may pass 2^31
    cols = tl.arange(0, BLOCK_K)
    best = tl.full([BLOCK_N, BLOCK_K], float("inf"), tl.float32)
    best_k0 = tl.zeros([BLOCK_N, BLOCK_K], tl.int32)  # start of the tile that gave `best`
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + cols
        k_mask = offs_k < K
        # Codes past K score +inf and never win (inf + finite FMAs stays inf).
        a = tl.load(a_ptr + offs_k, mask=k_mask, other=float("inf"))
        s = tl.broadcast_to(a[None, :], [BLOCK_N, BLOCK_K])
        for d in tl.static_range(D):
            # Loop-invariant: Triton's LICM hoists these loads out of the K loop (seen in the TTGIR).
            ud = tl.load(u_rows + d, mask=n_mask, other=0.0) * -2.0  # exact: a power of two
            cd = tl.load(cbt_ptr + d * K + offs_k, mask=k_mask, other=0.0)
            s = tl.fma(ud[:, None], cd[None, :], s)
        # Strict <: an equal score from a later tile keeps the earlier (smaller) index.
        better = s < best
        best = tl.where(better, s, best)
        best_k0 = tl.where(better, k0, best_k0)
    # Across the columns: the smallest index among those holding the row's minimum.
    low = tl.min(best, axis=1)
    idx = tl.where(best == low[:, None], best_k0 + cols[None, :], K)
    tl.store(out_ptr + offs_n, tl.min(idx, axis=1).to(tl.int64), mask=n_mask)


def argmin_scores_triton(
    u: torch.Tensor, cb: torch.Tensor, a: torch.Tensor, *, config: NearestConfig | None = None
) -> torch.Tensor:
    """:math:`\\arg\\min_k\\, a_k - 2 \\langle c_k, u_n \\rangle` for every row of ``u``, in one launch.

    Parameters
    ----------
    u : Tensor ``[N, D]``
    cb : Tensor ``[K, D]``, ``K >= 1``
    a : Tensor ``[K]``
        All on one CUDA device (or any device under ``TRITON_INTERPRET=1``); other dtypes than
        float32 are cast to it, as the scores are computed in float32.
    config : NearestConfig, optional
        Overrides :func:`default_config` (tests and tuning).

    Returns
    -------
    Tensor ``[N]``, int64: the first index of each row's minimum score, as ``torch.argmin``.

    Raises
    ------
    ValueError
        for mismatched shapes, no codes, or inputs on several devices.
    """
    require_triton(u.device)
    if (
        u.dim() != 2
        or cb.dim() != 2
        or a.dim() != 1
        or cb.shape[1] != u.shape[1]
        or a.shape[0] != cb.shape[0]
    ):
        raise ValueError(
            f"expected u [N, D], cb [K, D], a [K]; got {tuple(u.shape)}, {tuple(cb.shape)}, {tuple(a.shape)}"
        )
    if len({u.device, cb.device, a.device}) > 1:
        raise ValueError(f"u, cb and a must be on one device, got {u.device}, {cb.device}, {a.device}")
    (n, d), k = u.shape, cb.shape[0]
    if k == 0:
        raise ValueError("argmin over zero codes")
    if k >= 1 << 31:
        raise ValueError(f"at most 2^31 - 1 codes, got {k}")
    out = torch.empty(n, dtype=torch.int64, device=u.device)
    if n == 0:
        return out
    u = u.to(torch.float32).contiguous()
    cbt = cb.to(torch.float32).t().contiguous()  # [D, K]: K * D values, negligible next to u
    a = a.to(torch.float32).contiguous()
    cfg = config or default_config(k, d)
    _argmin_scores_kernel[(triton.cdiv(n, cfg.block_n),)](
        u, cbt, a, out, n, k, D=d, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, num_warps=cfg.num_warps
    )
    return out
