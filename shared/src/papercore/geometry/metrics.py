r"""Point-cloud distances and generative-model metrics, in pure PyTorch (no custom CUDA extension).

Distances between two clouds :math:`X = \{x_i\}_{i=1}^N`, :math:`Y = \{y_j\}_{j=1}^M`:

* :func:`chamfer`: :math:`\mathrm{CD}(X, Y) = \frac1N\sum_i \min_j \|x_i - y_j\|^2 + \frac1M\sum_j \min_i \|x_i - y_j\|^2`
  (squared distances, per-point means, both directions added: latent_3d_points' convention);
  :func:`chamfer_per_point` gives the two directions per point.
* :func:`emd_exact`: :math:`\mathrm{EMD}(X, Y) = \min_{\pi} \frac1N \sum_i \|x_i - y_{\pi(i)}\|` over
  permutations (``N = M``; scipy's ``linear_sum_assignment``), or POT's ``emd2`` with uniform weights
  for ``N != M`` — the 1-Wasserstein distance of the two empirical measures, so
  :math:`\mathrm{EMD}(X, X + t) = \|t\|`.
* :func:`emd_auction`: the same EMD by Bertsekas' auction with ε-scaling, batched on the GPU. It
  returns a feasible matching (an upper bound) and the dual bound of its final prices (a lower
  bound), so the error of every value is **certified**: ``0 <= value - EMD <= value - lower``,
  and it stops once ``value - lower <= tol * value``.

Set metrics (latent_3d_points' ``evaluation_metrics.py`` and PointFlow's definitions), from a
distance matrix ``D[s, r]`` between generated clouds ``s`` and reference clouds ``r``:

* **MMD** :math:`= \frac1{|R|}\sum_r \min_s D[s, r]` (each reference's nearest sample, averaged);
* **COV** :math:`= |\{\arg\min_r D[s, r] : s\}| / |R|` (references that are some sample's nearest);
* **1-NNA**: the leave-one-out accuracy of the 1-nearest-neighbour classifier of ``S ∪ R`` (0.5 is
  ideal; 1.0 when the sets are disjoint);
* **JSD** (:func:`jsd`): Jensen–Shannon divergence (base 2, in [0, 1]) between the occupancy
  distributions of the two sets on a 28³ grid of ``[-0.5, 0.5]³`` clipped to the ball of radius 0.5:
  each point counts in the grid cell (centre) nearest to it. Clouds must lie in that ball.

:func:`pairwise` builds ``D`` for ``"cd"``, ``"emd"`` (auction) or ``"emd-exact"``, batched and
chunked, on any device; :func:`evaluate` computes any of ``mmd-cd``, ``cov-cd``, ``1nna-cd``, the
``-emd`` variants and ``jsd`` at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from papercore.geometry.knn import knn

__all__ = [
    "METRICS",
    "AuctionResult",
    "chamfer",
    "chamfer_per_point",
    "check_clouds",
    "coverage",
    "emd",
    "emd_auction",
    "emd_exact",
    "evaluate",
    "jsd",
    "mmd",
    "mmd_cov",
    "one_nna",
    "pairwise",
]

METRICS = ("mmd-cd", "cov-cd", "1nna-cd", "mmd-emd", "cov-emd", "1nna-emd", "jsd")


def check_clouds(
    x, name: str = "clouds", *, min_points: int = 1, radius: float | None = None
) -> torch.Tensor:
    """``x`` as a float tensor ``[B, N, 3]`` (a single ``[N, 3]`` cloud gets a batch axis); one-line
    ``ValueError`` for a wrong shape, NaN/inf values, too few points or (with ``radius``) points
    outside the ball of that radius."""
    x = torch.as_tensor(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be point clouds [B, N, 3] or [N, 3], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if x.shape[1] < min_points:
        raise ValueError(f"{name} have {x.shape[1]} points per cloud, fewer than the {min_points} needed")
    bad = ~torch.isfinite(x).all(-1).all(-1)
    if bad.any():
        raise ValueError(
            f"{name}: cloud {int(bad.nonzero()[0])} holds NaN or inf coordinates; drop or repair it"
        )
    if radius is not None:
        far = float(x.norm(dim=-1).max())
        if far > radius * (1 + 1e-3):
            raise ValueError(
                f"{name} reach {far:.3f} from the origin, outside the ball of radius {radius} that the metric "
                "assumes: normalise them (papercore.geometry.normalize_unit_ball, or --normalize)"
            )
    return x


def chamfer_per_point(x, y, *, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distance of each point of ``x`` to ``y`` ``[B, N]`` and of each point of ``y`` to ``x`` ``[B, M]``."""
    x, y = check_clouds(x, "x"), check_clouds(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y hold {x.shape[0]} and {y.shape[0]} clouds: pass as many of each")
    dxy = knn(x, y, 1, backend=backend)[0][..., 0]
    dyx = knn(y, x, 1, backend=backend)[0][..., 0]
    return dxy, dyx


def chamfer(x, y, *, backend: str = "auto") -> torch.Tensor:
    """Chamfer distance per pair of clouds ``[B]`` (squared distances, means, both directions added)."""
    dxy, dyx = chamfer_per_point(x, y, backend=backend)
    return dxy.mean(1) + dyx.mean(1)


def emd_exact(x, y) -> torch.Tensor:
    """Exact EMD per pair ``[B]`` (float64, CPU): the optimal matching cost per point, Euclidean ground cost.

    Equal sizes: scipy's ``linear_sum_assignment``; otherwise POT's ``emd2`` with uniform weights.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    x, y = check_clouds(x, "x"), check_clouds(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y hold {x.shape[0]} and {y.shape[0]} clouds: pass as many of each")
    xs, ys = x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
    out = []
    for a, b in zip(xs, ys):
        C = cdist(a, b)
        if len(a) == len(b):
            r, c = linear_sum_assignment(C)
            out.append(C[r, c].mean())
        else:
            import ot

            out.append(float(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), C, numItermax=10_000_000)))
    return torch.tensor(out, dtype=torch.float64)


@dataclass
class AuctionResult:
    """EMD by auction: ``value`` (a matching's cost, >= EMD), ``lower`` (a dual bound, <= EMD),
    the matching ``assignment[b, i] = j`` and the number of bidding rounds."""

    value: torch.Tensor
    lower: torch.Tensor
    assignment: torch.Tensor
    rounds: int

    @property
    def certified_gap(self) -> torch.Tensor:
        """``(value - lower) / value``: a bound on the relative error of ``value``."""
        return (self.value - self.lower) / self.value.clamp_min(1e-300)


def emd_auction(
    x,
    y,
    *,
    tol: float = 1e-3,
    eps_start: float | None = None,
    factor: float = 4.0,
    max_rounds: int = 1_000_000,
) -> AuctionResult:
    r"""EMD between equal-size clouds by the auction algorithm with ε-scaling (Bertsekas), batched.

    Bidders are the points of ``x``, objects those of ``y``, the cost :math:`c_{ij} = \|x_i - y_j\|`.
    Every unassigned bidder bids for its best object :math:`j_1 = \arg\min_j c_{ij} + p_j`, raising
    its price by :math:`w_2 - w_1 + \varepsilon` (second-best minus best); an object goes to its
    highest bidder (Jacobi rounds). When every bidder holds an object, ε-complementary slackness
    gives :math:`\sum_i c_{i\pi(i)} - \mathrm{OPT} \le N\varepsilon`; the prices' dual bound
    :math:`\sum_i \min_j (c_{ij} + p_j) - \sum_j p_j \le \mathrm{OPT}` measures the actual gap, and ε is
    divided by ``factor`` until ``(value - lower) <= tol * value`` for every pair.

    Parameters
    ----------
    x, y : Tensor
        ``[B, N, 3]`` each (any device).
    tol : float
        Certified relative error at which a pair stops.
    eps_start : float, optional
        The first ε (default: a quarter of the mean nearest-neighbour cost scale).
    """
    x, y = check_clouds(x, "x"), check_clouds(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"the auction EMD matches clouds of equal sizes, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    B, N, _ = x.shape
    dev = x.device
    work = torch.float64 if dev.type == "cpu" else torch.float32
    C_all = torch.cdist(x.to(work), y.to(work))  # [B, N, N]
    value = torch.empty(B, dtype=torch.float64, device=dev)
    lower = torch.empty(B, dtype=torch.float64, device=dev)
    assignment = torch.empty(B, N, dtype=torch.long, device=dev)
    active = torch.arange(B, device=dev)
    C = C_all
    p = torch.zeros(B, N, dtype=work, device=dev)
    eps = torch.full((B,), eps_start if eps_start else 0.25 * float(C.mean()), dtype=work, device=dev)
    rounds = 0
    while len(active):
        b = len(active)
        owner = torch.full((b, N), -1, dtype=torch.long, device=dev)  # object -> bidder
        held = torch.full((b, N), -1, dtype=torch.long, device=dev)  # bidder -> object
        while True:
            free = held < 0
            if not free.any() or rounds >= max_rounds:
                break
            rounds += 1
            fb, fi = free.nonzero(as_tuple=True)  # only the free bidders bid
            w, j = (C[fb, fi] + p[fb]).topk(2, dim=1, largest=False)
            j1 = j[:, 0]
            bid = p[fb, j1] + (w[:, 1] - w[:, 0]) + eps[fb]
            key = fb * N + j1  # (pair, object)
            top = torch.full((b * N,), -math.inf, dtype=work, device=dev).scatter_reduce(0, key, bid, "amax")
            wins = bid == top[key]
            winner = torch.full((b * N,), -1, dtype=torch.long, device=dev).scatter_reduce(
                0, key[wins], fi[wins], "amax"
            )
            got = (winner >= 0).view(b, N)
            bb, objs = got.nonzero(as_tuple=True)
            new = winner.view(b, N)[bb, objs]
            prev = owner[bb, objs]
            lost = prev >= 0
            held[bb[lost], prev[lost]] = -1
            owner[bb, objs] = new
            held[bb, new] = objs
            top = top.view(b, N)
            p = torch.where(got, top, p)
        Cd = C.double()
        cost = Cd.gather(2, held.clamp_min(0)[..., None])[..., 0].mean(1)
        lb = (Cd + p.double()[:, None, :]).amin(2).mean(1) - p.double().mean(1)
        done = (cost - lb <= tol * cost) | (rounds >= max_rounds) | (eps < 1e-12)
        idx = active[done]
        value[idx], lower[idx], assignment[idx] = cost[done], lb[done], held[done]
        keep = ~done
        active, C, p, eps = active[keep], C[keep], p[keep], eps[keep] / factor
    return AuctionResult(value.cpu(), lower.cpu(), assignment.cpu(), rounds)


def emd(x, y, *, method: str = "auction", tol: float = 1e-3) -> torch.Tensor:
    """EMD per pair ``[B]``: ``method="exact"`` (:func:`emd_exact`) or ``"auction"`` (:func:`emd_auction`, certified to ``tol``)."""
    if method == "exact":
        return emd_exact(x, y)
    if method == "auction":
        return emd_auction(x, y, tol=tol).value
    raise ValueError(f"method must be 'exact' or 'auction', got {method!r}")


def pairwise(
    a,
    b,
    metric: str = "cd",
    *,
    batch: int = 64,
    device=None,
    tol: float = 1e-3,
    progress: bool = False,
    symmetric: bool = False,
) -> torch.Tensor:
    """The distance matrix ``D[i, j] = metric(a[i], b[j])`` ``[len(a), len(b)]`` (float64, CPU).

    ``metric``: ``"cd"`` (:func:`chamfer`), ``"emd"`` (:func:`emd_auction` to ``tol``) or
    ``"emd-exact"``. Pairs are evaluated ``batch`` at a time on ``device`` (default: ``a``'s).
    ``symmetric=True`` (``a is b``) computes the upper triangle only and mirrors it.
    """
    a, b = check_clouds(a, "a"), check_clouds(b, "b")
    dev = torch.device(device) if device is not None else a.device
    if metric not in ("cd", "emd", "emd-exact"):
        raise ValueError(f"metric must be 'cd', 'emd' or 'emd-exact', got {metric!r}")
    n, m = len(a), len(b)
    ii, jj = (
        torch.triu_indices(n, m) if symmetric else torch.cartesian_prod(torch.arange(n), torch.arange(m)).T
    )
    D = torch.zeros(n, m, dtype=torch.float64)
    steps = range(0, ii.numel(), batch)
    if progress:
        from papercore.runtime import progress as bar

        steps = bar(steps, desc=f"pairwise {metric}")
    for s in steps:
        i, j = ii[s : s + batch], jj[s : s + batch]
        x, y = a[i].to(dev), b[j].to(dev)
        if metric == "cd":
            d = chamfer(x, y)
        elif metric == "emd":
            d = emd_auction(x, y, tol=tol).value
        else:
            d = emd_exact(x, y)
        D[i, j] = d.double().cpu()
    if symmetric:
        D = torch.maximum(D, D.T)
    return D


def mmd(D: torch.Tensor) -> float:
    """Minimum matching distance: the mean over references (columns) of the nearest sample's distance."""
    return float(D.min(0).values.mean())


def coverage(D: torch.Tensor) -> float:
    """Coverage: the fraction of references (columns) that are the nearest reference of some sample (row)."""
    return float(len(torch.unique(D.argmin(1))) / D.shape[1])


def mmd_cov(D: torch.Tensor) -> dict[str, float]:
    """``{"mmd": ..., "cov": ...}`` of a sample-by-reference distance matrix."""
    return {"mmd": mmd(D), "cov": coverage(D)}


def one_nna(D_sr: torch.Tensor, D_ss: torch.Tensor, D_rr: torch.Tensor) -> float:
    """1-NNA: leave-one-out accuracy of the 1-NN classifier on samples ∪ references (PointFlow).

    ``D_sr`` ``[S, R]``, ``D_ss`` ``[S, S]``, ``D_rr`` ``[R, R]``. Each cloud is labelled by the set of
    its nearest other cloud; the accuracy over all ``S + R`` clouds is returned (0.5: indistinguishable).
    """
    S, R = D_sr.shape
    top = torch.cat([D_ss, D_sr], 1)
    bottom = torch.cat([D_sr.T, D_rr], 1)
    M = torch.cat([top, bottom], 0).clone()
    M.fill_diagonal_(math.inf)
    label = torch.cat([torch.zeros(S), torch.ones(R)])
    pred = label[M.argmin(1)]
    return float((pred == label).float().mean())


def _grid(resolution: int, radius: float) -> torch.Tensor:
    ticks = torch.linspace(-radius, radius, resolution, dtype=torch.float64)
    g = torch.cartesian_prod(ticks, ticks, ticks)
    return g[g.norm(dim=1) <= radius]


def occupancy(
    clouds, resolution: int = 28, radius: float = 0.5, counts: str = "points", outside: str = "error"
) -> torch.Tensor:
    """Counts per cell of the clipped grid: every point (``counts="points"``, latent_3d_points' JSD)
    or every cloud that has a point in the cell (``"clouds"``). A point outside the ball is an error
    (``outside="error"``) or counts in its nearest cell (``"nearest"``, latent_3d_points' behaviour,
    which only warns)."""
    if outside not in ("error", "nearest"):
        raise ValueError(f"outside must be 'error' or 'nearest', got {outside!r}")
    x = check_clouds(clouds, "clouds", radius=radius if outside == "error" else None).double()
    grid = _grid(resolution, radius).to(x.device)
    B, N, _ = x.shape
    # the nearest point of the full grid is a rounding; the clipped grid's nearest differs only for
    # points whose rounded cell lies outside the ball: those few search the clipped grid
    step = 2 * radius / (resolution - 1)
    ijk = torch.round((x.reshape(-1, 3) + radius) / step).clamp(0, resolution - 1).long()
    full = torch.full((resolution**3,), -1, dtype=torch.long, device=x.device)
    gijk = torch.round((grid + radius) / step).long()
    full[(gijk[:, 0] * resolution + gijk[:, 1]) * resolution + gijk[:, 2]] = torch.arange(
        len(grid), device=x.device
    )
    idx = full[(ijk[:, 0] * resolution + ijk[:, 1]) * resolution + ijk[:, 2]]
    miss = idx < 0
    if miss.any():
        idx[miss] = knn(x.reshape(-1, 3)[miss][None], grid[None], 1, backend="torch")[1][0, :, 0]
    idx = idx.reshape(B, N)
    out = torch.zeros(len(grid), dtype=torch.float64, device=x.device)
    if counts == "points":
        out.index_add_(0, idx.reshape(-1), torch.ones(B * N, dtype=torch.float64, device=x.device))
    elif counts == "clouds":
        hit = torch.zeros(B, len(grid), dtype=torch.bool, device=x.device)
        hit[torch.arange(B, device=x.device)[:, None].expand(B, N), idx] = True
        out = hit.double().sum(0)
    else:
        raise ValueError(f"counts must be 'points' or 'clouds', got {counts!r}")
    return out.cpu()


def _js(P: torch.Tensor, Q: torch.Tensor) -> float:
    P, Q = P / P.sum(), Q / Q.sum()
    M = (P + Q) / 2

    def kl(a, b):
        m = a > 0
        return float((a[m] * torch.log2(a[m] / b[m])).sum())

    return min(max(0.5 * kl(P, M) + 0.5 * kl(Q, M), 0.0), 1.0)


def jsd(
    samples,
    refs,
    *,
    resolution: int = 28,
    radius: float = 0.5,
    counts: str = "points",
    outside: str = "error",
) -> float:
    """Jensen–Shannon divergence (base 2) of the two sets' grid occupancy distributions (see the module
    docstring). References must lie in the ball; generated points outside it are an error, or with
    ``outside="nearest"`` count in their nearest cell (a generator's stray points are its own fault)."""
    return _js(
        occupancy(samples, resolution, radius, counts, outside), occupancy(refs, resolution, radius, counts)
    )


def evaluate(
    samples,
    refs,
    metrics: Sequence[str] = ("mmd-cd", "cov-cd", "1nna-cd", "jsd"),
    *,
    batch: int = 64,
    device=None,
    tol: float = 1e-3,
    progress: bool = False,
    outside: str = "error",
) -> dict[str, float]:
    """Any of :data:`METRICS` for generated clouds ``samples`` against reference clouds ``refs``
    (``outside``: see :func:`jsd`).

    Distance matrices are computed once per ground distance (``cd``, ``emd``: the certified auction
    to ``tol``); the reference-reference and sample-sample matrices only when 1-NNA is asked for.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    s, r = check_clouds(samples, "samples"), check_clouds(refs, "references")
    out: dict[str, float] = {}
    for dist in ("cd", "emd"):
        wanted = [m for m in metrics if m.endswith("-" + dist)]
        if not wanted:
            continue
        kw = dict(batch=batch, device=device, tol=tol, progress=progress)
        D = pairwise(s, r, dist, **kw)
        if f"mmd-{dist}" in wanted:
            out[f"mmd-{dist}"] = mmd(D)
        if f"cov-{dist}" in wanted:
            out[f"cov-{dist}"] = coverage(D)
        if f"1nna-{dist}" in wanted:
            out[f"1nna-{dist}"] = one_nna(
                D, pairwise(s, s, dist, symmetric=True, **kw), pairwise(r, r, dist, symmetric=True, **kw)
            )
    if "jsd" in metrics:
        out["jsd"] = jsd(s, r, outside=outside)
    return {m: out[m] for m in metrics}
