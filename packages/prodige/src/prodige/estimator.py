"""``GraphEmbedding``: PRODIGE as a scikit-learn transformer.

``fit`` learns a weighted graph whose shortest-path distances reproduce the data's distances
(Euclidean, geodesic or precomputed) within a size budget; ``transform`` returns each point's
graph distances to ``n_components`` anchor vertices (the paper's InstanceEmbedding). A new point
is attached to its ``knn`` nearest training points: its distance to anchor ``a`` is
``min_j (d(x, x_j) / s + d_G(j, a))`` (``s`` the target scale); a training point's is its own
vertex's distance.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from prodige.config import ProdigeConfig, ProdigeTrainConfig
from prodige.data import check_distance_matrix, geodesic_distances
from prodige.init import init_graph
from prodige.paths import find_paths, pairwise_distances
from prodige.tasks import DistanceTask
from prodige.train import fit_graph

__all__ = ["GraphEmbedding", "max_params_per_vertex"]


def max_params_per_vertex(n: int, n_virtual: int = 0, directed: bool = False) -> float:
    """Parameters per data vertex of the complete graph on ``n + n_virtual`` vertices."""
    V = n + n_virtual
    E = V * (V - 1) // (1 if directed else 2)
    return (V + 2 * E + 1) / n


class GraphEmbedding(TransformerMixin, BaseEstimator):
    """Learn a sparse weighted graph whose shortest paths reproduce the data's distances.

    Parameters
    ----------
    params_per_vertex : float
        Size budget: ``V + 2E + 1 <= params_per_vertex * n`` (4 ~ a 4-dimensional embedding).
    n_components : int
        Anchor vertices, i.e. output features of :meth:`transform`.
    metric : {"euclidean", "geodesic", "precomputed"}
        The target distance; ``fit(D, metric="precomputed")`` also works.
    n_neighbors : int
        kNN of the geodesic target.
    knn, random_edges, virtual_vertices : int
        Initial graph.
    steps, finetune_steps, batch_size : int
        Training budget (sources per step).
    sparsity, lr, soft, prune_every : see :class:`prodige.ProdigeConfig`.
    random_state : int or None
        Seeds everything: a fixed value gives bit-identical fits.

    Attributes
    ----------
    graph_ : Graph
    scale_ : float
        Target distances are divided by it inside the graph.
    anchors_ : ndarray of int
    embedding_ : ndarray ``[n, n_components]``
        Anchor distances of the training points (original units).
    history_ : list of dict
    """

    def __init__(
        self,
        params_per_vertex: float = 4.0,
        n_components: int = 8,
        metric: str = "euclidean",
        n_neighbors: int = 10,
        knn: int = 16,
        random_edges: int = 8,
        virtual_vertices: int = 0,
        steps: int = 600,
        finetune_steps: int = 200,
        batch_size: int = 16,
        sparsity: float = 1.0,
        lr: float = 0.05,
        soft: bool = True,
        prune_every: int = 100,
        random_state: int | None = None,
    ):
        self.params_per_vertex = params_per_vertex
        self.n_components = n_components
        self.metric = metric
        self.n_neighbors = n_neighbors
        self.knn = knn
        self.random_edges = random_edges
        self.virtual_vertices = virtual_vertices
        self.steps = steps
        self.finetune_steps = finetune_steps
        self.batch_size = batch_size
        self.sparsity = sparsity
        self.lr = lr
        self.soft = soft
        self.prune_every = prune_every
        self.random_state = random_state

    def _configs(self) -> tuple[ProdigeConfig, ProdigeTrainConfig]:
        cfg = ProdigeConfig(
            knn=self.knn, random_edges=self.random_edges, virtual_vertices=self.virtual_vertices,
            soft=self.soft, sparsity=self.sparsity, sparsity_ramp=max(1, self.steps // 2),
            params_per_vertex=float(self.params_per_vertex), lr=self.lr,
            prune_every=self.prune_every if self.prune_every < self.steps else 0,
        )  # fmt: skip
        tcfg = ProdigeTrainConfig(steps=self.steps, batch_size=self.batch_size, finetune_steps=self.finetune_steps,
                                  log_every=max(1, min(50, self.steps)))  # fmt: skip
        return cfg, tcfg

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.default_rng().integers(2**31))
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(2**31))
        return int(self.random_state)

    def fit(self, X, y=None, metric: str | None = None):
        """Learn the graph of ``X`` (points ``[n, d]``, or distances ``[n, n]`` with ``metric="precomputed"``)."""
        metric = self.metric if metric is None else metric
        if metric not in ("euclidean", "geodesic", "precomputed"):
            raise ValueError(f"metric={metric!r}: choose euclidean, geodesic or precomputed")
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        cfg, tcfg = self._configs()
        n = len(X)
        if metric == "precomputed":
            D = check_distance_matrix(X)
            task, points = DistanceTask(distances=D), None
        elif metric == "geodesic":
            D = geodesic_distances(X, min(self.n_neighbors, n - 1))
            task, points = DistanceTask(distances=D), X
        else:
            task, points = DistanceTask(points=X), X
        limit = max_params_per_vertex(n, min(self.virtual_vertices, n) if points is not None else 0)
        if self.params_per_vertex > limit:
            raise ValueError(
                f"params_per_vertex={self.params_per_vertex} is more than the complete graph on {n} points holds "
                f"({limit:.3g}): lower it"
            )
        if self.params_per_vertex < 1 + 2 / n:
            raise ValueError(
                f"params_per_vertex={self.params_per_vertex} leaves no edge: use at least {1 + 3 / n:.3g}"
            )
        seed = self._seed()
        graph = init_graph(points if metric == "euclidean" else None,
                           None if metric == "euclidean" else D, cfg, scale=task.scale,
                           default_distance=task.max_target(), seed=seed) if metric != "geodesic" else \
            init_graph(None, D, cfg, scale=task.scale, default_distance=task.max_target(), seed=seed)  # fmt: skip
        torch.manual_seed(seed)
        res = fit_graph(graph, task, cfg, tcfg, seed=seed)
        self.graph_, self.scale_, self.history_ = graph, task.scale, res.history
        self.metric_ = metric
        self._X = X if metric != "precomputed" else None
        k = min(self.n_components, n)
        self.anchors_ = self._pick_anchors(task, k, seed)
        G = pairwise_distances(graph, sources=self.anchors_, targets=np.arange(n))  # [k, n]
        self._anchor_dist = G.T  # graph units
        self.embedding_ = self._anchor_dist * self.scale_
        return self

    @staticmethod
    def _pick_anchors(task: DistanceTask, k: int, seed: int) -> np.ndarray:
        """Farthest-point sampling on the target metric from a seeded start."""
        rng = np.random.default_rng(seed)
        first = int(rng.integers(task.n_data))
        anchors = [first]
        dmin = task.full_targets([first])[0]
        for _ in range(k - 1):
            nxt = int(np.argmax(dmin))
            anchors.append(nxt)
            dmin = np.minimum(dmin, task.full_targets([nxt])[0])
        return np.array(anchors)

    def transform(self, X):
        """Anchor-distance features ``[n, n_components]`` (original units)."""
        check_is_fitted(self, "graph_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.metric_ == "precomputed":
            Dx = check_array(X, dtype=np.float64)
            if Dx.shape[1] != self.graph_.n_data:
                raise ValueError(f"precomputed: pass distances to the {self.graph_.n_data} training points")
        else:
            from scipy.spatial.distance import cdist

            Dx = cdist(X, self._X)  # exact per pair (a training point gets exactly 0)
        k = min(self.knn, Dx.shape[1]) or 1
        nbr = np.argsort(Dx, axis=1, kind="stable")[:, :k]
        via = Dx[np.arange(len(Dx))[:, None], nbr][:, :, None] / self.scale_ + self._anchor_dist[nbr]
        out = via.min(1)
        exact = Dx[np.arange(len(Dx)), nbr[:, 0]] == 0  # a training point: its own vertex
        out[exact] = self._anchor_dist[nbr[exact, 0]]
        return out * self.scale_

    def pairwise_distances(self, rows=None) -> np.ndarray:
        """Eval-mode graph distances between training points (original units)."""
        check_is_fitted(self, "graph_")
        return pairwise_distances(self.graph_, sources=rows) * self.scale_

    def paths(self, src, dst):
        """Eval-mode shortest paths (:class:`prodige.paths.Paths`) between training points."""
        check_is_fitted(self, "graph_")
        return find_paths(self.graph_, src, dst, self.graph_.eval_kept())

    def num_parameters(self) -> int:
        check_is_fitted(self, "graph_")
        return self.graph_.num_parameters()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.input_tags.positive_only = self.metric == "precomputed"
        return tags
