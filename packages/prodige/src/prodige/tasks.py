r"""Tasks: what the graph distances are trained to do.

Every task draws a batch of (source, target) pairs grouped by source (one Dijkstra per source)
and turns the differentiable distances into a loss (and a per-pair loss for REINFORCE).

* :class:`DistanceTask` — compression: :math:`\frac1B\sum (d_G(i,j) - D_{ij}/s)^2` for a target
  metric (Euclidean on points, geodesic, or a precomputed matrix), :math:`s` the mean target.
* :class:`RecommendationTask` (in :mod:`prodige.recsys`) — collaborative filtering.
* :class:`GloveTask` (in :mod:`prodige.glove`) — the GloVe co-occurrence objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Batch", "DistanceTask"]


@dataclass
class Batch:
    src: np.ndarray
    dst: np.ndarray


def grouped_pairs(rng: np.random.Generator, sources: np.ndarray, n_targets: int, targets_per_source: int):
    """``src``, ``dst`` arrays: every source with ``targets_per_source`` random targets in
    ``[0, n_targets)``, or with all of them when 0."""
    if targets_per_source == 0:
        return np.repeat(sources, n_targets), np.tile(np.arange(n_targets), len(sources))
    return np.repeat(sources, targets_per_source), rng.integers(
        0, n_targets, len(sources) * targets_per_source
    )


class DistanceTask:
    """Fit graph distances to a target metric on ``n`` data vertices.

    Parameters
    ----------
    distances : ``[n, n]`` array, optional
        A precomputed target (symmetric for undirected graphs, >= 0, finite).
    points : ``[n, d]`` array, optional
        Euclidean targets computed on the fly (no ``n x n`` matrix: fits 10k+ points).
    """

    def __init__(self, distances: np.ndarray | None = None, points: np.ndarray | None = None):
        if (distances is None) == (points is None):
            raise ValueError("pass distances or points (exactly one)")
        self.D = None if distances is None else np.asarray(distances, dtype=np.float64)
        self.X = None if points is None else np.asarray(points, dtype=np.float64)
        self.n_data = len(self.D if self.D is not None else self.X)
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, self.n_data, (2, 20000))
        raw = self._raw(i, j)
        self.scale = float(raw[i != j].mean()) if (i != j).any() else 1.0
        if not self.scale > 0:
            raise ValueError("the target distances are all zero: nothing to fit")

    def _raw(self, i, j) -> np.ndarray:
        if self.D is not None:
            return self.D[i, j]
        return np.linalg.norm(self.X[i] - self.X[j], axis=-1)

    def target(self, i, j) -> np.ndarray:
        """Target distances of pairs (in graph units: divided by :attr:`scale`)."""
        return self._raw(np.asarray(i), np.asarray(j)) / self.scale

    def sample(self, rng: np.random.Generator, n_sources: int, targets_per_source: int) -> Batch:
        sources = rng.choice(self.n_data, n_sources, replace=n_sources > self.n_data)
        return Batch(*grouped_pairs(rng, sources, self.n_data, targets_per_source))

    def loss(self, d: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.from_numpy(self.target(batch.src, batch.dst)).to(d.dtype)
        per = (d - t) ** 2
        return per.mean(), per

    def max_target(self) -> float:
        rng = np.random.default_rng(1)
        i, j = rng.integers(0, self.n_data, (2, 20000))
        return float(self.target(i, j).max())

    def full_targets(self, rows=None) -> np.ndarray:
        """Target rows ``[len(rows), n]`` in graph units (all rows by default)."""
        rows = np.arange(self.n_data) if rows is None else np.asarray(rows)
        if self.D is not None:
            return self.D[rows] / self.scale
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(self.X[rows], self.X) / self.scale
