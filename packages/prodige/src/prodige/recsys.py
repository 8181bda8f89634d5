r"""Collaborative filtering on a user–item graph (the paper's recommendation task).

Vertices are users ``0..U-1`` and items ``U..U+I-1``. The initial graph (as the authors'
``make_graph_colaborative``) links every user to its training items (weight ``1/score``, 1 for
implicit feedback), and users to users and items to items by cosine kNN on the interaction matrix
(weight ``1 - cos``). Training ranks a user's positives above sampled negatives by graph distance,

.. math:: L = -\frac{1}{|P|}\sum_{i \in P} \log \frac{e^{-d(u,i)}}{e^{-d(u,i)} + \sum_{j \in N} e^{-d(u,j)}} ,

and evaluation is the NCF leave-one-out protocol: each user's held-out item is ranked against 100
items the user never interacted with; HR@k is the fraction ranked in the top k, NDCG@k adds
``1 / log2(rank + 2)``.

:func:`hierarchical_feedback` makes offline data with a known structure: users and items sit at
the leaves of a tree of clusters and interact mostly within nearby subtrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from prodige.config import ProdigeConfig
from prodige.graph import Graph
from prodige.tasks import Batch

__all__ = [
    "Feedback",
    "hierarchical_feedback",
    "init_cf_graph",
    "RecommendationTask",
    "rank_metrics",
    "graph_scores",
    "MatrixFactorization",
]


@dataclass
class Feedback:
    """Implicit feedback split leave-one-out."""

    n_users: int
    n_items: int
    train: np.ndarray  # [N, 2] (user, item) pairs
    test_item: np.ndarray  # [U] the held-out item of each user
    test_negatives: np.ndarray  # [U, 100] items the user never interacted with


def hierarchical_feedback(
    n_users: int = 600,
    n_items: int = 400,
    branching: int = 4,
    depth: int = 3,
    per_user: int = 20,
    sharpness: float = 2.0,
    n_negatives: int = 100,
    seed: int = 0,
) -> Feedback:
    """Users and items at random leaves of a ``branching``-ary tree of ``depth`` levels; user ``u``
    picks ``per_user`` distinct items with probability proportional to
    ``exp(-sharpness * treedist(u, i)) * popularity_i`` (treedist: levels up to the common
    ancestor). One item per user is held out for the test, with ``n_negatives`` non-interacted
    items."""
    rng = np.random.default_rng(seed)
    leaves = branching**depth
    lu, li = rng.integers(0, leaves, n_users), rng.integers(0, leaves, n_items)

    def ancestors(leaf):  # [n, depth] ids of the ancestors at each level
        return np.stack([leaf // branching**k for k in range(depth, 0, -1)], 1)

    au, ai = ancestors(lu), ancestors(li)
    common = (au[:, None, :] == ai[None, :, :]).sum(-1)  # shared levels
    pop = rng.pareto(2.0, n_items) + 1
    logits = -sharpness * (depth - common) + np.log(pop)[None]
    pairs, test, negs = [], np.zeros(n_users, np.int64), np.zeros((n_users, n_negatives), np.int64)
    for u in range(n_users):
        p = np.exp(logits[u] - logits[u].max())
        items = rng.choice(n_items, per_user, replace=False, p=p / p.sum())
        test[u] = items[0]
        pairs.append(np.stack([np.full(per_user - 1, u), items[1:]], 1))
        others = np.setdiff1d(np.arange(n_items), items)
        negs[u] = rng.choice(others, n_negatives, replace=False)
    return Feedback(n_users, n_items, np.concatenate(pairs), test, negs)


def init_cf_graph(fb: Feedback, config: ProdigeConfig | None = None, knn: int | None = None) -> Graph:
    """User–item edges of the training pairs plus cosine-kNN user–user and item–item edges."""
    from sklearn.neighbors import NearestNeighbors

    cfg = config or ProdigeConfig()
    k = cfg.knn if knn is None else knn
    U, I = fb.n_users, fb.n_items
    R = np.zeros((U, I))
    R[fb.train[:, 0], fb.train[:, 1]] = 1.0
    src, dst, w = [fb.train[:, 0]], [U + fb.train[:, 1]], [np.ones(len(fb.train))]
    for M, off in ((R, 0), (R.T, U)):
        kk = min(k, len(M) - 1)
        if kk < 1:
            continue
        dist, nbr = NearestNeighbors(n_neighbors=kk + 1, metric="cosine").fit(M).kneighbors(M)
        rows = np.repeat(np.arange(len(M)), kk + 1)
        keep = nbr.ravel() != rows
        src.append(off + rows[keep])
        dst.append(off + nbr.ravel()[keep])
        w.append(np.maximum(dist.ravel()[keep], 1e-3))
    src, dst, w = np.concatenate(src), np.concatenate(dst), np.concatenate(w)
    return Graph(U + I, src, dst, w, directed=cfg.directed, init_p=cfg.init_p, default_distance=10.0)


class RecommendationTask:
    """Sampled-softmax ranking of positives against random negatives (see the module docstring)."""

    def __init__(self, fb: Feedback, positives: int = 10, negatives: int = 100):
        self.fb, self.P, self.N = fb, positives, negatives
        self.n_data = fb.n_users + fb.n_items
        order = np.argsort(fb.train[:, 0], kind="stable")
        self.items_sorted = fb.train[order, 1]
        self.start = np.searchsorted(fb.train[order, 0], np.arange(fb.n_users + 1))

    def sample(self, rng: np.random.Generator, n_sources: int, targets_per_source: int) -> Batch:
        fb = self.fb
        users = rng.choice(fb.n_users, n_sources, replace=n_sources > fb.n_users)
        cnt = self.start[users + 1] - self.start[users]
        pos = self.items_sorted[
            self.start[users][:, None] + (rng.random((n_sources, self.P)) * cnt[:, None]).astype(int)
        ]
        neg = rng.integers(0, fb.n_items, (n_sources, self.N))
        items = np.concatenate([pos, neg], 1)
        return Batch(np.repeat(users, self.P + self.N), fb.n_users + items.ravel())

    def loss(self, d: torch.Tensor, batch: Batch):
        D = d.view(-1, self.P + self.N)
        pos, neg = -D[:, : self.P], -D[:, self.P :]
        lse_neg = torch.logsumexp(neg, 1, keepdim=True)
        per_pos = -(pos - torch.logaddexp(pos, lse_neg))  # [S, P]
        per_user = per_pos.mean(1, keepdim=True)
        return per_pos.mean(), per_user.expand_as(D).reshape(-1)


def rank_metrics(scores_pos: np.ndarray, scores_neg: np.ndarray, ks=(5, 10)) -> dict[str, float]:
    """HR@k and NDCG@k of held-out items (higher score = better; ties count against)."""
    rank = (scores_neg >= scores_pos[:, None]).sum(1)
    out = {}
    for k in ks:
        hit = rank < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1 / np.log2(rank + 2), 0).mean())
    return out


def graph_scores(graph: Graph, fb: Feedback) -> tuple[np.ndarray, np.ndarray]:
    """``-d(user, item)`` on the eval graph for the held-out items and their negatives."""
    from prodige.paths import pairwise_distances

    D = pairwise_distances(graph, sources=np.arange(fb.n_users), targets=np.arange(graph.n_vertices))
    users = np.arange(fb.n_users)
    return -D[users, fb.n_users + fb.test_item], -D[users[:, None], fb.n_users + fb.test_negatives]


class MatrixFactorization(torch.nn.Module):
    """Dot-product MF with ``dim`` floats per user and item, trained with the same sampled softmax."""

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.U = torch.nn.Parameter(0.1 * torch.randn(n_users, dim, generator=g))
        self.V = torch.nn.Parameter(0.1 * torch.randn(n_items, dim, generator=g))

    def fit(self, task: RecommendationTask, steps: int = 2000, batch: int = 64, lr: float = 0.02,
            weight_decay: float = 0.0, seed: int = 0) -> MatrixFactorization:  # fmt: skip
        opt = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        rng = np.random.default_rng(seed)
        U = task.fb.n_users
        for _ in range(steps):
            b = task.sample(rng, batch, 0)
            s = (self.U[torch.from_numpy(b.src)] * self.V[torch.from_numpy(b.dst - U)]).sum(1)
            loss, _ = task.loss(-s, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def scores(self, fb: Feedback) -> tuple[np.ndarray, np.ndarray]:
        S = (self.U @ self.V.T).numpy()
        users = np.arange(fb.n_users)
        return S[users, fb.test_item], S[users[:, None], fb.test_negatives]
