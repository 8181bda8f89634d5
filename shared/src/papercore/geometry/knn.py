r"""k nearest neighbours between batches of point clouds: a Triton kernel and a torch reference.

:func:`knn` returns, for every query point :math:`x_i` of cloud ``b``, the ``k`` points of
``ref[b]`` nearest to it, as squared distances :math:`\|x_i - y_j\|^2` (ascending) and indices.
Chamfer distances, 1-NNA, DGCNN's EdgeConv (def3d) and LaplatGAN's upsampler all go through it.

Backends
--------
``"torch"``
    Chunks of queries against the whole reference set, ``cdist``-style distances by the expansion
    :math:`\|x\|^2 + \|y\|^2 - 2x^\top y` and ``topk``; the ``k`` winners' distances are then
    recomputed as exact differences (the expansion loses digits when points nearly coincide).
    Memory: ``chunk × M`` floats per batch element.
``"triton"``
    One program per (cloud, block of queries) streams the reference cloud in tiles and keeps a
    running top-k in registers (each tile's ``k`` smallest are merged by replacing the current
    worst); distances are exact differences. Memory: the outputs only, ``O(B·N·k)``.
``"auto"``
    Triton for CUDA tensors with ``k <= 32``, torch elsewhere.

Ties are broken arbitrarily (either backend may return another index of an equal distance).
"""

from __future__ import annotations

import functools

import torch

from papercore.kernels.triton_guard import resolve_backend

__all__ = ["knn", "knn_torch"]

MAX_TRITON_K = 32


def _check(query: torch.Tensor, ref: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    squeeze = query.ndim == 2
    if squeeze:
        query, ref = query[None], ref[None]
    if query.ndim != 3 or ref.ndim != 3 or query.shape[-1] != ref.shape[-1] or query.shape[0] != ref.shape[0]:
        raise ValueError(
            f"knn takes query [B, N, D] and ref [B, M, D], got {tuple(query.shape)} and {tuple(ref.shape)}"
        )
    if not 1 <= k <= ref.shape[1]:
        raise ValueError(f"k must be in [1, {ref.shape[1]}] (the reference cloud's size), got {k}")
    return query, ref, squeeze


def knn_torch(
    query: torch.Tensor, ref: torch.Tensor, k: int, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch reference of :func:`knn` (chunks of ``chunk`` queries; default: ~64M distances per chunk)."""
    query, ref, squeeze = _check(query, ref, k)
    B, N, _ = query.shape
    M = ref.shape[1]
    chunk = chunk or max(1, (1 << 26) // max(1, B * M))
    # |q|^2 + |r|^2 - 2 q.r as one batched product of augmented points (much faster than cdist on CPUs)
    ones_r = torch.ones(B, M, 1, dtype=ref.dtype, device=ref.device)
    ra = torch.cat([-2 * ref, ones_r, (ref * ref).sum(-1, keepdim=True)], -1).transpose(1, 2)
    flat = ref.reshape(B * M, -1)
    base = (torch.arange(B, device=ref.device) * M)[:, None, None]
    dists, idxs = [], []
    for s in range(0, N, chunk):
        q = query[:, s : s + chunk]
        ones_q = torch.ones(*q.shape[:2], 1, dtype=q.dtype, device=q.device)
        d = torch.bmm(torch.cat([q, (q * q).sum(-1, keepdim=True), ones_q], -1), ra)
        idx = d.argmin(-1, keepdim=True) if k == 1 else d.topk(k, dim=-1, largest=False, sorted=True).indices
        nb = flat[(idx + base).reshape(-1)].view(*idx.shape, -1)
        exact = ((q[:, :, None] - nb) ** 2).sum(-1)
        if k > 1:
            exact, order = exact.sort(-1)
            idx = idx.gather(-1, order)
        dists.append(exact)
        idxs.append(idx)
    d, i = torch.cat(dists, 1), torch.cat(idxs, 1)
    return (d[0], i[0]) if squeeze else (d, i)


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def knn_kernel(q_ptr, r_ptr, d_ptr, i_ptr, N, M, sqb, sqn, srb, srn, sob, son,
                   K: tl.constexpr, KP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):  # fmt: skip
        b = tl.program_id(0)
        rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        rmask = rows < N
        qb = q_ptr + b * sqb + rows * sqn
        qx = tl.load(qb, mask=rmask, other=0.0).to(tl.float32)
        qy = tl.load(qb + 1, mask=rmask, other=0.0).to(tl.float32)
        qz = tl.load(qb + 2, mask=rmask, other=0.0).to(tl.float32)
        kcol = tl.arange(0, KP)
        real = kcol[None, :] < K
        # padded slots hold -inf so that they are never the worst one to replace
        best_d = tl.where(real, float("inf"), float("-inf")) + tl.zeros([BLOCK_N, KP], tl.float32)
        best_i = tl.zeros([BLOCK_N, KP], tl.int32) - 1
        cols = tl.arange(0, BLOCK_M)
        for start in range(0, M, BLOCK_M):
            c = start + cols
            cmask = c < M
            rb = r_ptr + b * srb + c * srn
            rx = tl.load(rb, mask=cmask, other=0.0).to(tl.float32)
            ry = tl.load(rb + 1, mask=cmask, other=0.0).to(tl.float32)
            rz = tl.load(rb + 2, mask=cmask, other=0.0).to(tl.float32)
            dx = qx[:, None] - rx[None, :]
            dy = qy[:, None] - ry[None, :]
            dz = qz[:, None] - rz[None, :]
            d = dx * dx + dy * dy + dz * dz
            d = tl.where(cmask[None, :], d, float("inf"))
            for _ in range(K):
                m = tl.min(d, axis=1)
                am = tl.argmin(d, axis=1)
                worst = tl.max(best_d, axis=1)
                wpos = tl.argmax(best_d, axis=1)
                take = (kcol[None, :] == wpos[:, None]) & (m < worst)[:, None]
                best_d = tl.where(take, m[:, None], best_d)
                best_i = tl.where(take, (start + am)[:, None], best_i)
                d = tl.where(cols[None, :] == am[:, None], float("inf"), d)
        best_d = tl.where(real, best_d, float("inf"))
        ob = rows * son + b * sob
        for j in range(K):  # emit in ascending order
            m = tl.min(best_d, axis=1)
            am = tl.argmin(best_d, axis=1)
            idx = tl.sum(tl.where(kcol[None, :] == am[:, None], best_i, 0), axis=1)
            tl.store(d_ptr + ob + j, m, mask=rmask)
            tl.store(i_ptr + ob + j, idx, mask=rmask)
            best_d = tl.where(kcol[None, :] == am[:, None], float("inf"), best_d)

    return knn_kernel


def _knn_triton(query: torch.Tensor, ref: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    import triton

    if query.shape[-1] != 3:
        raise ValueError("the Triton kNN kernel takes 3-D points; use backend='torch' for other dimensions")
    if k > MAX_TRITON_K:
        raise ValueError(f"the Triton kNN kernel takes k <= {MAX_TRITON_K}; use backend='torch'")
    q, r = query.float().contiguous(), ref.float().contiguous()
    B, N, _ = q.shape
    M = r.shape[1]
    d = torch.empty(B, N, k, device=q.device, dtype=torch.float32)
    i = torch.empty(B, N, k, device=q.device, dtype=torch.int32)
    block_n = 32 if k <= 8 else 16
    grid = (B, triton.cdiv(N, block_n))
    _kernel()[grid](q, r, d, i, N, M, q.stride(0), q.stride(1), r.stride(0), r.stride(1), d.stride(0), d.stride(1),
                    K=k, KP=triton.next_power_of_2(k), BLOCK_N=block_n, BLOCK_M=64)  # fmt: skip
    return d, i.long()


def knn(
    query: torch.Tensor, ref: torch.Tensor, k: int, *, backend: str = "auto", chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest points of ``ref`` to each point of ``query``.

    Parameters
    ----------
    query, ref : Tensor
        ``[B, N, D]`` and ``[B, M, D]`` (or ``[N, D]`` and ``[M, D]``); the Triton kernel needs ``D = 3``.
    k : int
        Neighbours per query, ``1 <= k <= M``.
    backend : {"auto", "triton", "torch"}
    chunk : int, optional
        Queries per chunk of the torch backend.

    Returns
    -------
    dist2, index : Tensor
        ``[B, N, k]`` squared Euclidean distances (ascending, float32 for float32 input) and int64 indices into ``ref``.
    """
    q, r, squeeze = _check(query, ref, k)
    use = resolve_backend(backend, q.device)
    if backend == "auto" and (k > MAX_TRITON_K or q.shape[-1] != 3):
        use = "torch"
    if use == "triton":
        d, i = _knn_triton(q, r, k)
        d = d.to(query.dtype) if query.is_floating_point() else d
    else:
        d, i = knn_torch(q, r, k, chunk)
    return (d[0], i[0]) if squeeze else (d, i)
