"""Query-rotation attention over the blocks of a shared cache.

Every block ``f`` stores its keys once, rotated at local positions ``0..len_f-1``. Row ``r`` (a
worker, or a prefill pass) attends to block ``f`` with its query rotated by ``rot[f, r, s]`` and
sees the keys ``j <= limit[f, r, s]`` (``limit = -1``: the block is not in the row's view). With
``rot = limit = p - o_f`` (the query position ``p`` in the row's view minus the block's start
``o_f`` there), this is exactly causal softmax attention over the row's view, the concatenated
blocks with block ``f`` re-rotated to ``o_f``::

    <R(p) q, R(o_f + j) k_j> = <R(p - o_f) q, R(j) k_j>

:func:`hogwild_attention` dispatches to the Triton split-K kernel (``hogwild.kernels``) or to
:func:`reference_attention` (pure torch, fp32 softmax).
"""

from __future__ import annotations

import torch

from hogwild.rope import rotate


def _check(q, k_pool, v_pool, block_base, block_len, rot, limit, inv_freq):
    if q.dim() != 4 or k_pool.dim() != 3 or v_pool.dim() != 3:
        raise ValueError("expected q [R, Hq, S, D], k_pool [Hkv, N, D], v_pool [Hkv, N, Dv]")
    r, hq, s, d = q.shape
    hkv = k_pool.shape[0]
    if hq % hkv:
        raise ValueError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    if k_pool.shape[-1] != d or inv_freq.numel() * 2 != d:
        raise ValueError(f"head dims disagree: q {d}, keys {k_pool.shape[-1]}, rope {2 * inv_freq.numel()}")
    f = block_base.numel()
    if block_len.numel() != f or tuple(rot.shape) != (f, r, s) or tuple(limit.shape) != (f, r, s):
        raise ValueError(
            f"block tables disagree: {f} bases, {block_len.numel()} lengths, rot {tuple(rot.shape)}, "
            f"limit {tuple(limit.shape)}; expected [{f}, {r}, {s}]"
        )


def reference_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_base: torch.Tensor,
    block_len: torch.Tensor,
    rot: torch.Tensor,
    limit: torch.Tensor,
    inv_freq: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Pure-torch query-rotation attention (float32 scores and softmax), output ``[R, Hq, S, Dv]``.

    Rows that see no key at all get zeros. A reference: it reads the block table back to the host
    (one slice per block), so unlike the Triton path it cannot be captured in a CUDA graph.
    """
    _check(q, k_pool, v_pool, block_base, block_len, rot, limit, inv_freq)
    r, hq, s, _ = q.shape
    hkv = k_pool.shape[0]
    g = hq // hkv
    scores, values = [], []
    for f, (base, length) in enumerate(zip(block_base.tolist(), block_len.tolist())):
        if length == 0:
            continue
        k = k_pool[:, base : base + length].float().repeat_interleave(g, dim=0)  # [Hq, L, D]
        v = v_pool[:, base : base + length].float().repeat_interleave(g, dim=0)
        qf = rotate(q.float(), rot[f].to(q.device)[:, None, :], inv_freq)  # [R, Hq, S, D]
        sc = torch.einsum("rhsd,hld->rhsl", qf, k) * scale
        visible = torch.arange(length, device=q.device) <= limit[f].to(q.device)[..., None]  # [R, S, L]
        scores.append(sc.masked_fill(~visible[:, None], float("-inf")))
        values.append(v)
    if not scores:
        return q.new_zeros(r, hq, s, v_pool.shape[-1])
    sc = torch.cat(scores, dim=-1)
    m = sc.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(sc - m)
    denom = p.sum(dim=-1, keepdim=True)
    p = p / torch.where(denom > 0, denom, torch.ones_like(denom))
    out = torch.einsum("rhsl,hld->rhsd", p, torch.cat(values, dim=1))
    return out.to(q.dtype)


def hogwild_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_base: torch.Tensor,
    block_len: torch.Tensor,
    rot: torch.Tensor,
    limit: torch.Tensor,
    inv_freq: torch.Tensor,
    scale: float | None = None,
    *,
    backend: str = "auto",
    chunks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Query-rotation attention; ``backend`` is ``"auto"`` (Triton on CUDA), ``"triton"`` or ``"torch"``.

    Parameters
    ----------
    q : ``[R, Hq, S, D]`` queries (rows = workers; ``S`` tokens per row).
    k_pool, v_pool : ``[Hkv, N, D]`` / ``[Hkv, N, Dv]``; block ``f`` is ``pool[:, base_f : base_f + len_f]``.
    block_base, block_len : ``[F]`` integer tensors.
    rot, limit : ``[F, R, S]`` integer tensors (see the module docstring).
    inv_freq : ``[D // 2]`` float32 RoPE inverse frequencies.
    scale : softmax scale (default ``D ** -0.5``).
    chunks : optional ``[C, 3]`` int32 work list ``(block, first key, end key)`` for the kernel
        (:func:`hogwild.kernels.make_chunks`); built here when omitted.
    """
    from hogwild.kernels.triton_ops import SUPPORTED_HEAD_DIMS
    from papercore.kernels.triton_guard import resolve_backend

    scale = q.shape[-1] ** -0.5 if scale is None else scale
    chosen = resolve_backend(backend, q.device)
    if backend == "auto" and (
        q.shape[-1] not in SUPPORTED_HEAD_DIMS or v_pool.shape[-1] not in SUPPORTED_HEAD_DIMS
    ):
        chosen = "torch"  # head dims the kernel has no tiles for
    if chosen == "torch":
        return reference_attention(q, k_pool, v_pool, block_base, block_len, rot, limit, inv_freq, scale)
    _check(q, k_pool, v_pool, block_base, block_len, rot, limit, inv_freq)
    from hogwild.kernels import triton_attention

    return triton_attention(
        q, k_pool, v_pool, block_base, block_len, rot, limit, inv_freq, scale, chunks=chunks
    )
