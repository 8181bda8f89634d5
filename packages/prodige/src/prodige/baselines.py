r"""Equal-size baselines for distance compression.

Vector methods store ``d`` floats per vertex (``d`` = parameters per vertex); graph baselines
store ``V + 2E + 1`` numbers like PRODIGE, with *fixed* weights (the target distance of each
edge), which isolates what learning weights and probabilities adds.

* :func:`pca_distances` — Euclidean distances of a ``d``-dimensional PCA (points only).
* :func:`mds_distances` — metric MDS (SMACOF, scikit-learn), minimising the raw stress
  :math:`\sum_{i<j}(\|x_i - x_j\| - D_{ij})^2`, i.e. the same MSE.
* :func:`isomap_distances` — Isomap (geodesic MDS through a kNN graph).
* :func:`poincare_mds_distances` — MDS in the Poincaré ball: minimise
  :math:`\sum (c\, d_{\mathbb{B}}(x_i, x_j) - D_{ij})^2` with
  :math:`d_{\mathbb{B}}(x, y) = \operatorname{arcosh}\!\big(1 + \frac{2\|x-y\|^2}{(1-\|x\|^2)(1-\|y\|^2)}\big)`,
  points :math:`x = \tanh(\|v\|) v / \|v\|` of free :math:`v` and one learned scale :math:`c`.
* :func:`fixed_graph_distances` — shortest paths in a kNN graph or an MST (+ shortest extra edges)
  cut to ``n_edges`` edges, weights fixed to the target distances.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree

__all__ = [
    "pca_distances",
    "mds_distances",
    "isomap_distances",
    "poincare_mds_distances",
    "fixed_graph_distances",
    "relative_mse",
]


def relative_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """:math:`\\sum (\\hat D - D)^2 / \\sum D^2` over all ordered pairs."""
    return float(((pred - target) ** 2).sum() / (target**2).sum())


def _pdist(Y: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(Y)


def pca_distances(X: np.ndarray, d: int, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    return _pdist(PCA(n_components=d, random_state=seed).fit_transform(X))


def mds_distances(D: np.ndarray, d: int, seed: int = 0, max_iter: int = 300) -> np.ndarray:
    """Metric SMACOF from the classical-MDS start."""
    from sklearn.manifold import MDS

    Y = MDS(n_components=d, metric="precomputed", metric_mds=True, init="classical_mds", n_init=1,
            max_iter=max_iter, random_state=seed).fit_transform(D)  # fmt: skip
    return _pdist(Y)


def isomap_distances(X: np.ndarray, d: int, n_neighbors: int = 10) -> np.ndarray:
    from sklearn.manifold import Isomap

    return _pdist(Isomap(n_neighbors=n_neighbors, n_components=d).fit_transform(X))


def poincare_mds_distances(
    D: np.ndarray, d: int, seed: int = 0, steps: int = 1500, lr: float = 0.05, batch: int = 65536
) -> np.ndarray:
    """MDS in the ``d``-dimensional Poincaré ball with a learned scale (``d`` floats per vertex + 1)."""
    g = torch.Generator().manual_seed(seed)
    n = len(D)
    Dt = torch.from_numpy(D).double()
    scale = float(Dt.mean())
    v = (0.01 * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_(True)
    log_c = torch.tensor(np.log(scale), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([v, log_c], lr=lr)

    def ball(v):
        r = v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.tanh(r) * v / r

    def dist(x, y):
        sq = ((x - y) ** 2).sum(-1)
        den = (1 - (x**2).sum(-1)).clamp_min(1e-12) * (1 - (y**2).sum(-1)).clamp_min(1e-12)
        return torch.acosh(1 + 2 * sq / den + 1e-12)

    for _ in range(steps):
        i = torch.randint(0, n, (batch,), generator=g)
        j = torch.randint(0, n, (batch,), generator=g)
        x = ball(v)
        loss = ((log_c.exp() * dist(x[i], x[j]) - Dt[i, j]) ** 2).mean() / scale**2
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = ball(v)
        out = np.empty((n, n))
        for s in range(0, n, 512):
            out[s : s + 512] = (log_c.exp() * dist(x[s : s + 512, None], x[None])).numpy()
        np.fill_diagonal(out, 0)
    return out


def fixed_graph_distances(D: np.ndarray, n_edges: int, kind: str = "knn") -> np.ndarray:
    """Shortest paths in a fixed-weight graph of ``n_edges`` edges (weights = ``D``).

    ``kind="knn"``: the ``n_edges`` shortest edges of the symmetric kNN graph with the smallest
    ``k`` that holds that many. ``kind="mst"``: the minimum spanning tree plus the shortest
    non-tree edges up to ``n_edges``. Unreachable pairs get the mean target distance.
    """
    n = len(D)
    off = D + np.diag(np.full(n, np.inf))
    if kind == "mst":
        T = minimum_spanning_tree(sp.csr_array(np.where(np.isfinite(off), D, 0))).tocoo()
        a, b = np.minimum(T.row, T.col), np.maximum(T.row, T.col)
        tree = set(zip(a.tolist(), b.tolist()))
        iu, ju = np.triu_indices(n, 1)
        order = np.argsort(D[iu, ju], kind="stable")
        extra = [(i, j) for i, j in zip(iu[order], ju[order]) if (i, j) not in tree][
            : max(0, n_edges - len(tree))
        ]
        pairs = list(tree)[:n_edges] + extra
        r, c = (np.array(x) for x in zip(*pairs))
    else:
        nbr = np.argsort(off, axis=1)
        for k in range(1, n):
            r = np.repeat(np.arange(n), k)
            c = nbr[:, :k].ravel()
            r, c = np.minimum(r, c), np.maximum(r, c)
            key = np.unique(r * n + c)
            if len(key) >= n_edges or k == n - 1:
                break
        r, c = key // n, key % n
        keep = np.argsort(D[r, c], kind="stable")[:n_edges]
        r, c = r[keep], c[keep]
    A = sp.csr_array((np.maximum(D[r, c], 1e-300), (r, c)), shape=(n, n))
    G = dijkstra(A, directed=False)
    if connected_components(A, directed=False)[0] > 1:
        G[~np.isfinite(G)] = D[np.triu_indices(n, 1)].mean()
    return G
