"""Calibration of one linear layer (AQEngine): scales, residual k-means, then Adam on codebooks and
scales alternating with beam search over the codes, all on the layer's ``XTX`` objective.

For a weight :math:`W \\in \\mathbb{R}^{d_{out} \\times d_{in}}` and
:math:`H = \\mathrm{XTX} = \\mathbb{E}_x[x x^\\top]` (``[d_in, d_in]``, accumulated in float64 elsewhere),
the objective is the output error on the calibration tokens

.. math:: L(\\hat W) = \\operatorname{tr}\\big((W - \\hat W)\\, H\\, (W - \\hat W)^\\top\\big),
   \\qquad \\hat W_{o, [i]} = s_o \\sum_{m=1}^{M} C_m[b_{o,i,m}],

reported also relative to :math:`\\operatorname{tr}(W H W^\\top)` (the error of :math:`\\hat W = 0`).
Every function works on all output rows at once; Python loops run only over epochs, optimizer
steps, (input group, codebook) positions, k-means iterations and memory chunks.

Run ``python -m aqlm.engine --bench`` for the GPU timing script (``benchmarks/bench_engine.py``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch

from aqlm.config import AQLMConfig
from aqlm.kernels.reference import dequantize
from papercore.kernels.triton_guard import resolve_backend

logger = logging.getLogger(__name__)

# Largest temporary score matrix (points x centroids, rows x candidate codes) in elements: 2^26 fp32
# values are 256 MB, so 1x16 (65536 codes) on an 11008-row layer runs in ~11 chunks per step.
CHUNK_ELEMENTS = 1 << 26
ADAM_BETAS = (0.0, 0.95)


@dataclass
class AQResult:
    """The quantized layer and how it was found.

    Attributes
    ----------
    codes : int64 tensor ``[out/out_g, in/g, M]``, unsigned codes in ``[0, 2^B)``.
    codebooks : float32 tensor ``[M, 2^B, out_g, g]``.
    scales : float32 tensor ``[out/out_g, 1, 1, 1]``.
    loss : :math:`\\operatorname{tr}(\\Delta W H \\Delta W^\\top)` of the returned layer, in float64.
    relative_mse : ``loss`` / :math:`\\operatorname{tr}(W H W^\\top)` (0 when the latter is 0).
    epochs : number of Adam + beam-search rounds run.
    history : the objective after each round (the returned layer is the best of these and the
        initialisation, so ``loss == min(history)`` unless no round improved on k-means).
    timings : seconds spent in ``init``, ``adam`` and ``beam`` (summed over rounds).
    """

    codes: torch.Tensor
    codebooks: torch.Tensor
    scales: torch.Tensor
    loss: float
    relative_mse: float
    epochs: int
    history: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def xtx_loss(weight: torch.Tensor, reconstruction: torch.Tensor, xtx: torch.Tensor) -> torch.Tensor:
    """:math:`\\operatorname{tr}((W - \\hat W) H (W - \\hat W)^\\top) = \\sum_{o} \\Delta w_o^\\top H \\Delta w_o`.

    Computed in ``xtx.dtype`` (pass float64 tensors for a reference value); differentiable.
    """
    delta = (weight - reconstruction).to(xtx.dtype)
    return ((delta @ xtx) * delta).sum()


# ------------------------------------------------------------------------- nearest-code search
def _argmin_scores(
    u: torch.Tensor, cb: torch.Tensor, a: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """:math:`\\arg\\min_k\\, a_k - 2 \\langle c_k, u_n \\rangle` for every row of ``u [N, D]``
    (``cb [K, D]``, ``a [K]``): int64 ``[N]``, the first index on ties.

    With :math:`a_k = \\|c_k\\|^2` this is the nearest centroid; with :math:`a_k = c_k H c_k^\\top`
    the greedy code choice of :func:`beam_search_pass`.

    Float32 CUDA tensors go through the fused Triton kernel
    (:func:`aqlm.kernels.nearest.argmin_scores_triton`), which keeps a running minimum per row and
    never writes the ``N x K`` scores: the unfused form is bound by writing and reading them (``D``
    is 4-32), about 0.2 s for 2^20 x 65536 on an H200. Scores are float32 FMA chains there rather
    than ``addmm``'s, so near-ties may resolve differently. Everything else (CPU, other dtypes, no
    Triton) runs :func:`_argmin_scores_torch`, where ``chunk_elements`` bounds the scores alive at a
    time; the kernel ignores it (it holds ``BLOCK_N x BLOCK_K`` scores per program).
    """
    # float32 only: float64 keeps its precision on the torch path, and half-precision calibration
    # keeps addmm's half-precision scores (no change of behaviour but the speed).
    if u.dtype == cb.dtype == a.dtype == torch.float32 and resolve_backend("auto", u.device) == "triton":
        from aqlm.kernels.nearest import argmin_scores_triton  # imports Triton: only on this path

        return argmin_scores_triton(u, cb, a)
    return _argmin_scores_torch(u, cb, a, chunk_elements)


def _argmin_scores_torch(
    u: torch.Tensor, cb: torch.Tensor, a: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """:func:`_argmin_scores` in plain torch: one fused ``addmm`` and an ``argmin`` per chunk of rows,
    so at most ``chunk_elements`` scores are alive at a time. Any device and dtype."""
    rows = max(1, chunk_elements // len(cb))
    return torch.cat([torch.addmm(a, x, cb.T, alpha=-2).argmin(1) for x in u.split(rows)])


# ----------------------------------------------------------------------------------- k-means
def _nearest(points: torch.Tensor, centroids: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS):
    """Index of the nearest centroid of every point: :math:`\\arg\\min_c \\|c\\|^2 - 2 x^\\top c`."""
    return _argmin_scores(points, centroids, centroids.square().sum(1), chunk_elements)


@torch.no_grad()
def kmeans(
    points: torch.Tensor,
    k: int,
    iters: int,
    seed: int = 0,
    *,
    max_points: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of ``points [n, d]`` into ``k`` centroids; returns ``(centroids [k, d], codes [n])``.

    Initial centroids are ``k`` random points (drawn without replacement). Each iteration assigns
    every point to its nearest centroid and moves each centroid to the mean of its points; a
    centroid left without points is re-seeded at a random point drawn with probability
    proportional to its squared distance to its (updated) centroid, so no code is wasted. When
    ``max_points`` is given and smaller than ``n``, the centroids are fitted on that many random
    points and all points are assigned at the end. The random choices come from a CPU
    generator seeded with ``seed``: the result is deterministic on CPU (on GPU, up to the order of
    atomic additions in the centroid update).
    """
    n, _ = points.shape
    gen = torch.Generator().manual_seed(seed)
    sample = points
    if max_points is not None and n > max_points:
        sample = points[torch.randperm(n, generator=gen)[:max_points].to(points.device)]
    ns = len(sample)
    if ns <= k:  # every point gets its own centroid: zero error, the spare centroids repeat points
        extra = torch.randint(ns, (k - ns,), generator=gen).to(points.device)
        centroids = torch.cat([sample, sample[extra]])
        return centroids, _nearest(points, centroids, chunk_elements)

    centroids = sample[torch.randperm(ns, generator=gen)[:k].to(points.device)].clone()
    codes = None
    for _ in range(iters):
        new_codes = _nearest(sample, centroids, chunk_elements)
        if codes is not None and torch.equal(new_codes, codes):
            break  # converged: the update below would not move any centroid
        codes = new_codes
        counts = torch.bincount(codes, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, codes, sample)
        centroids = sums / counts.clamp_min(1)[:, None].to(sums.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            # Draw points with probability ~ their squared error, without replacement (exponential
            # race: the smallest Exp(1)/error win). This favours poorly served regions like
            # k-means++, yet does not put every empty centroid on copies of one far point. Errors are
            # against the *updated* centroids: stale ones pick points a centroid has just moved onto.
            err = (sample - centroids[codes]).square().sum(1)
            race = -torch.rand(ns, generator=gen, dtype=err.dtype).log().to(err.device) / err
            centroids[empty] = sample[race.topk(len(empty), largest=False).indices]
    return centroids, _nearest(points, centroids, chunk_elements)


def _blocks(weight: torch.Tensor, out_group_size: int, in_group_size: int) -> torch.Tensor:
    """``[out, in]`` -> ``[out/out_g, in/g, out_g, g]`` (the layout of codes and codebook entries)."""
    out, inp = weight.shape
    return weight.reshape(
        out // out_group_size, out_group_size, inp // in_group_size, in_group_size
    ).transpose(1, 2)


@torch.no_grad()
def residual_kmeans_init(
    weight: torch.Tensor,
    num_codebooks: int,
    nbits: int,
    in_group_size: int,
    out_group_size: int = 1,
    *,
    iters: int = 100,
    max_points_per_centroid: int | None = None,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual k-means: codebook ``m`` is the k-means of what codebooks ``0..m-1`` left unexplained.

    With :math:`r^{(0)} = w` for every ``out_g x g`` block of ``weight`` (already divided by its
    scales), :math:`C_m, b_{\\cdot,m} = \\mathrm{kmeans}(r^{(m)}, 2^B)` and
    :math:`r^{(m+1)} = r^{(m)} - C_m[b_{\\cdot,m}]`. The fit is plain MSE (not ``XTX``); beam search
    and Adam then optimise the real objective. Codebook ``m`` uses seed ``seed + m``, so the first
    codebooks do not depend on ``num_codebooks``.

    Returns ``codes [out/out_g, in/g, M]`` (int64) and ``codebooks [M, 2^B, out_g, g]`` (``weight.dtype``).
    """
    blocks = _blocks(weight, out_group_size, in_group_size)
    o, i, og, g = blocks.shape
    residual = blocks.reshape(o * i, og * g).clone()
    max_points = None if max_points_per_centroid is None else max_points_per_centroid << nbits
    codes, codebooks = [], []
    for m in range(num_codebooks):
        centroids, c = kmeans(
            residual, 1 << nbits, iters, seed + m, max_points=max_points, chunk_elements=chunk_elements
        )
        residual -= centroids[c]
        codes.append(c.view(o, i))
        codebooks.append(centroids.view(1 << nbits, og, g))
    return torch.stack(codes, -1), torch.stack(codebooks)


# ------------------------------------------------------------------------------- Adam on codebooks
def adam_steps(
    weight: torch.Tensor,
    xtx: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    *,
    steps: int,
    lr: float,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.optim.Optimizer:
    """``steps`` full-batch Adam steps on ``codebooks`` and ``scales`` (leaf tensors, updated in place).

    Minimises :math:`L / \\operatorname{tr}(W H W^\\top)` (normalised so that Adam's epsilon means the
    same for every layer) with the codes fixed, in ``xtx.dtype``. For symmetric :math:`H` the gradient
    with respect to the reconstruction is :math:`\\partial L / \\partial \\hat W = 2 (\\hat W - W) H`:
    it is formed directly (one matmul per step instead of the three of autograd through the
    quadratic form) and back-propagated through :func:`dequantize` only. Adam uses betas (0, 0.95)
    and AMSGrad, as the authors do. Pass the returned optimizer back in to keep its state across
    rounds.
    """
    if optimizer is None:
        optimizer = torch.optim.Adam([codebooks, scales], lr=lr, betas=ADAM_BETAS, amsgrad=True)
    with torch.no_grad():
        ref = xtx_loss(weight, torch.zeros_like(weight), xtx)
        factor = 2 / ref if ref > 0 else 2 * torch.ones_like(ref)
    with torch.enable_grad():  # callers often run calibration under no_grad
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            recon = dequantize(codes, codebooks, scales)
            with torch.no_grad():
                grad = ((recon - weight) @ xtx).mul_(factor)
            recon.backward(grad)
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


# ------------------------------------------------------------------------------------ beam search
@torch.no_grad()
def beam_search_pass(
    weight: torch.Tensor,
    xtx: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    *,
    beam_size: int = 1,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, float]:
    """One pass of beam search over all (input group ``i``, codebook ``m``) positions in a random order.

    Returns the new ``codes`` and the objective :math:`L` of the result as *tracked incrementally*
    (float64 sum of per-row changes; compare it with :func:`xtx_loss` to check the bookkeeping).
    Computed in ``codebooks.dtype``; ``weight`` and ``xtx`` are cast to it.

    The objective is a sum over output rows, so every row (block of ``out_g`` rows) is searched
    independently and in parallel. With :math:`R = W - \\hat W` and :math:`P = R H` kept up to date,
    changing code :math:`b_{o,i,m}` from ``c`` to ``k`` changes :math:`\\hat W_{o,[i]}` by
    :math:`\\delta = s_o (C_m[k] - C_m[c])` and the loss by

    .. math:: \\Delta L = -2 \\langle \\delta, P_{o,[i]} \\rangle + \\delta H_{[i][i]} \\delta^\\top
              = s_o^2 \\big(f(k) - f(c)\\big),\\quad
              f(k) = a_k - 2 \\langle C_m[k], U_o \\rangle,

    with :math:`a_k = C_m[k] H_{[i][i]} C_m[k]^\\top` and
    :math:`U_o = P_{o,[i]} / s_o + C_m[c] H_{[i][i]}`. So all :math:`2^B` candidates of all rows cost
    one ``[rows, g] x [g, 2^B]`` matmul (chunked to bound memory), and accepting a change
    updates :math:`P \\mathrel{-}= \\delta H_{[i], :}`: :math:`O(d_{out} (2^B g + d_{in} g))` per
    position instead of recomputing :math:`O(d_{out} d_{in}^2)`.

    ``beam_size = 1`` is greedy coordinate descent (a code changes only when :math:`\\Delta L < 0`).
    With ``beam_size = K`` every row keeps ``K`` hypotheses (codes, :math:`P` and loss each), expands
    each by all :math:`2^B` codes at the current position and keeps the ``K`` best; the best
    hypothesis of each row is returned, or the row's old codes if none beats them. Memory: ``K``
    copies of :math:`P` (``K d_out d_in`` values) and of the codes, plus one score chunk of at most
    ``chunk_elements`` values. The beam starts with one live hypothesis per row (the others at
    :math:`+\\infty`), so no two hypotheses ever coincide.
    """
    dtype, device = codebooks.dtype, codebooks.device
    num_codebooks, ncodes, og, g = codebooks.shape
    rows, groups, _ = codes.shape
    w, h = weight.to(device, dtype), xtx.to(device, dtype)
    inp = w.shape[1]
    kb = beam_size
    s = scales.reshape(rows).to(dtype)
    s_safe = torch.where(s != 0, s, torch.ones_like(s))  # a zero-scale row contributes nothing: any code
    s2 = s.double().square()[:, None]

    r = w - dequantize(codes, codebooks, scales).to(dtype)
    p = (r @ h).view(rows, 1, og, inp)
    init_loss = (p.double().view(rows, -1) * r.double().view(rows, -1)).sum(1)
    loss = init_loss[:, None].clone()  # [rows, K] float64
    hyp = codes.to(device, torch.int64)[:, None].clone()  # [rows, K, groups, M]
    if kb > 1:
        p = p.expand(rows, kb, og, inp).clone()
        hyp = hyp.expand(-1, kb, -1, -1).clone()
        loss = torch.cat([loss, loss.new_full((rows, kb - 1), math.inf)], 1)
    arange = torch.arange(rows, device=device)[:, None]

    order = torch.randperm(groups * num_codebooks, generator=torch.Generator().manual_seed(seed))
    for pos in order.tolist():
        i, m = divmod(pos, num_codebooks)
        cols = slice(i * g, (i + 1) * g)
        h_rows, h_cc = h[cols], h[cols, cols]
        cb = codebooks[m]  # [ncodes, og, g]
        a = ((cb @ h_cc) * cb).sum((1, 2))  # [ncodes]
        cur = hyp[:, :, i, m]  # [rows, K]
        c_cur = cb[cur]
        u = p[..., cols] / s_safe[:, None, None, None] + c_cur @ h_cc  # [rows, K, og, g]
        f_cur = a[cur] - 2 * (c_cur * u).sum((2, 3))  # [rows, K]
        if kb == 1:
            parent = torch.zeros_like(cur)
            new = _argmin_scores(u.view(rows, -1), cb.view(ncodes, -1), a, chunk_elements)[:, None]
        else:
            base = (loss / s2.clamp_min(torch.finfo(torch.float64).tiny)).to(dtype) - f_cur
            parent, new = _topk_codes(a, u, cb.view(ncodes, -1), cur, f_cur, base, kb, chunk_elements)
            u, f_cur, cur = u[arange, parent], f_cur[arange, parent], cur[arange, parent]
            p, hyp, loss = p[arange, parent], hyp[arange, parent], loss[arange, parent]
        # Exact change of the chosen candidates (elementwise, same formula as f_cur: staying costs 0).
        c_new = cb[new]
        delta = s2 * (a[new] - 2 * (c_new * u).sum((2, 3)) - f_cur).double()
        if kb == 1:
            keep = delta >= 0  # greedy: never accept a change that does not lower the loss
            new, delta = torch.where(keep, cur, new), delta.masked_fill(keep, 0)
            c_new = cb[new]
        step = s[:, None, None, None] * (c_new - cb[cur])  # change of W-hat on the group's columns
        p -= (step.reshape(-1, g) @ h_rows).view(p.shape)
        hyp[:, :, i, m] = new
        loss += delta

    best = loss.argmin(1)
    out_codes, out_loss = hyp[arange[:, 0], best], loss[arange[:, 0], best]
    worse = out_loss > init_loss  # only possible through rounding with beams: keep the old row then
    out_codes = torch.where(worse[:, None, None], codes.to(device, torch.int64), out_codes)
    return out_codes, torch.where(worse, init_loss, out_loss).sum().item()


def _topk_codes(a, u, cb, cur, f_cur, base, kb, chunk_elements):
    """The ``kb`` best (parent hypothesis, code) pairs per row by ``base[o, j] + f(k)``, chunked over codes.

    ``f`` at the current code is set to ``f_cur`` exactly, so keeping a hypothesis unchanged scores
    exactly its own loss. Returns ``parent, code``, both ``[rows, kb]``.
    """
    rows, ncodes = u.shape[0], cb.shape[0]
    uf = u.reshape(rows * kb, -1)
    step = max(1, chunk_elements // (rows * kb))
    best_val = base.new_full((rows, kb), math.inf)
    best_idx = torch.zeros(rows, kb, dtype=torch.int64, device=u.device)
    for start in range(0, ncodes, step):
        n = min(step, ncodes - start)
        f = torch.addmm(a[start : start + n], uf, cb[start : start + n].T, alpha=-2).view(rows, kb, n)
        local = cur - start
        inside = (local >= 0) & (local < n)
        local = local.clamp(0, n - 1)[..., None]
        f.scatter_(2, local, torch.where(inside[..., None], f_cur[..., None], f.gather(2, local)))
        f += base[..., None]
        val, idx = f.view(rows, kb * n).topk(min(kb, kb * n), dim=1, largest=False)
        flat = (idx // n) * ncodes + idx % n + start  # parent * ncodes + code
        best_val, sel = torch.cat([best_val, val], 1).topk(kb, dim=1, largest=False)
        best_idx = torch.cat([best_idx, flat], 1).gather(1, sel)
    return best_idx // ncodes, best_idx % ncodes


# ------------------------------------------------------------------------------------ the engine
def quantize_weight(
    weight: torch.Tensor,
    xtx: torch.Tensor,
    config: AQLMConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    compute_dtype: torch.dtype = torch.float32,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> AQResult:
    """Quantize one linear weight ``[out, in]`` with AQLM against ``xtx`` (``[in, in]``, :math:`E[xx^\\top]`).

    Runs on ``weight.device``:

    1. scales :math:`s_o = \\|W_o\\|_2` per output row (block of ``out_group_size`` rows);
    2. :func:`residual_kmeans_init` of :math:`W / s` (``init_max_iter`` iterations, optionally on
       ``init_max_points_per_centroid * 2^B`` sampled groups);
    3. up to ``max_epochs`` rounds of ``steps_per_epoch`` Adam steps (:func:`adam_steps`, lr ``lr``)
       followed by one :func:`beam_search_pass` (``beam_size``), stopping after the first round with
       :math:`L / L_{best} > 1 - \\text{relative\\_mse\\_tolerance}` (:math:`L_{best}` starts at the
       k-means loss).

    Optimisation runs in ``compute_dtype`` (float32: fast on GPU, ample for choosing codes); every
    reported loss is recomputed in float64 with the float64 ``xtx``. The layer with the lowest loss
    seen is returned.

    Dead inputs (zero rows and columns of ``xtx``) need no damping: ``xtx`` stays positive
    semi-definite, every score stays finite, and for a group whose inputs are all dead every code
    scores a change of exactly 0 (its ``xtx`` block and residual products are exact zeros), so the
    greedy search keeps its k-means code, a plain-MSE fit. Dead weights inside partly live groups
    follow whatever the live ones choose, as the objective allows.

    Raises
    ------
    ValueError
        for a non-2-D or non-finite weight, a non-finite or wrongly shaped ``xtx``, or group sizes that
        do not divide the weight's shape.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [out, in], got shape {tuple(weight.shape)}")
    out, inp = weight.shape
    og, g, nbits = config.out_group_size, config.in_group_size, config.nbits_per_codebook
    if inp % g:
        raise ValueError(f"in_group_size {g} does not divide in_features {inp}")
    if out % og:
        raise ValueError(f"out_group_size {og} does not divide out_features {out}")
    if tuple(xtx.shape) != (inp, inp):
        raise ValueError(
            f"xtx must have shape ({inp}, {inp}) for a weight [{out}, {inp}], got {tuple(xtx.shape)}"
        )
    if not torch.isfinite(weight).all():
        bad = int((~torch.isfinite(weight)).sum())
        raise ValueError(f"weight has {bad} non-finite values (NaN or Inf); cannot quantize it")
    if not torch.isfinite(xtx).all():
        raise ValueError("xtx has non-finite values (NaN or Inf): check the calibration activations")

    device = weight.device
    times = {"init": 0.0, "adam": 0.0, "beam": 0.0}
    clock = _Clock(device)
    w64 = weight.detach().to(torch.float64)
    h64 = xtx.detach().to(device, torch.float64)
    h64 = (h64 + h64.T) / 2  # accumulated sums can be off-symmetric by rounding
    reference = xtx_loss(w64, torch.zeros_like(w64), h64).item()
    w, h = w64.to(compute_dtype), h64.to(compute_dtype)

    # 1-2. scales and residual k-means in the scaled space
    scales = w.reshape(out // og, -1).norm(dim=1)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes, codebooks = residual_kmeans_init(
        (w.reshape(out // og, -1) / safe[:, None]).reshape(out, inp),
        config.num_codebooks,
        nbits,
        g,
        og,
        iters=config.init_max_iter,
        max_points_per_centroid=config.init_max_points_per_centroid,
        seed=seed,
        chunk_elements=chunk_elements,
    )
    codebooks = codebooks.requires_grad_(True)
    scales = scales.view(-1, 1, 1, 1).clone().requires_grad_(True)

    def full_loss() -> float:
        with torch.no_grad():
            return xtx_loss(w64, dequantize(codes, codebooks.double(), scales.double()), h64).item()

    best_loss = prev_best = full_loss()
    best = (codes, codebooks.detach().clone(), scales.detach().clone())
    times["init"] = clock()
    logger.debug(
        "k-means init %s: relative loss %.4g (%.1f s)",
        config.scheme,
        best_loss / (reference or 1),
        times["init"],
    )

    history, optimizer = [], None
    epochs = range(config.max_epochs)
    if progress:
        from papercore.runtime import progress as bar

        epochs = bar(epochs, desc=f"AQLM {config.scheme} {out}x{inp}")
    for epoch in epochs:
        optimizer = adam_steps(
            w, h, codes, codebooks, scales, steps=config.steps_per_epoch, lr=config.lr, optimizer=optimizer
        )
        times["adam"] += clock()
        codes, _ = beam_search_pass(
            w,
            h,
            codes,
            codebooks.detach(),
            scales.detach(),
            beam_size=config.beam_size,
            seed=seed * 1_000_003 + epoch + 1,
            chunk_elements=chunk_elements,
        )
        loss = full_loss()
        times["beam"] += clock()
        history.append(loss)
        logger.debug(
            "epoch %d: relative loss %.6g (%.1f s Adam, %.1f s beam so far)",
            epoch,
            loss / (reference or 1),
            times["adam"],
            times["beam"],
        )
        if loss < best_loss:
            best_loss, best = loss, (codes, codebooks.detach().clone(), scales.detach().clone())
        if prev_best <= 0 or loss / prev_best > 1 - config.relative_mse_tolerance:
            break
        prev_best = min(prev_best, loss)

    codes, codebooks, scales = best
    return AQResult(
        codes=codes,
        codebooks=codebooks.float(),
        scales=scales.float(),
        loss=best_loss,
        relative_mse=best_loss / reference if reference > 0 else 0.0,
        epochs=len(history),
        history=history,
        timings=times,
    )


class _Clock:
    """Seconds since the previous call, after the device's queued work is done."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.last = time.perf_counter()

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


if __name__ == "__main__":
    import runpy
    import sys
    from pathlib import Path

    if "--bench" not in sys.argv:
        sys.exit("usage: python -m aqlm.engine --bench [bench_engine.py options]")
    sys.argv.remove("--bench")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_engine.py"
    runpy.run_path(str(script), run_name="__main__")
