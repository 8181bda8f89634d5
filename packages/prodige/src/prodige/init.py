"""Initial graphs: k nearest neighbours plus random edges (small world), optional virtual vertices.

Weights start at the target distance of each edge (or its square with ``squared=True``), so the
initial graph distance is an upper bound of the target (triangle inequality) that is tight on
the edges themselves.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from prodige.config import ProdigeConfig
from prodige.graph import Graph

__all__ = ["init_graph"]


def init_graph(
    points: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    config: ProdigeConfig | None = None,
    *,
    scale: float = 1.0,
    default_distance: float | None = None,
    seed: int = 0,
) -> Graph:
    """A :class:`Graph` over the rows of ``points`` (Euclidean) or of a precomputed ``distances``
    matrix, with ``config.knn`` nearest-neighbour and ``config.random_edges`` random edges per
    vertex; weights are distances divided by ``scale``.

    ``config.virtual_vertices = k`` adds k-means centroids (needs ``points``), each linked to the
    points of its cluster and to every other centroid.
    """
    cfg = config or ProdigeConfig()
    if (points is None) == (distances is None):
        raise ValueError("pass points or distances (exactly one)")
    rng = np.random.default_rng(seed)
    n = len(points) if points is not None else len(distances)
    if n < 2:
        raise ValueError(f"need at least 2 vertices, got {n}")

    def dist(i, j):
        if points is not None:
            return np.linalg.norm(points[i] - points[j], axis=-1)
        return distances[i, j]

    src, dst = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    k = min(cfg.knn, n - 1)
    if k:
        if points is not None:
            nn = NearestNeighbors(n_neighbors=k + 1).fit(points)
            _, nbr = nn.kneighbors(points)
        else:
            nn = NearestNeighbors(n_neighbors=k + 1, metric="precomputed").fit(distances)
            _, nbr = nn.kneighbors(distances)
        rows = np.repeat(np.arange(n), k + 1)
        cols = nbr.ravel()
        keep = rows != cols
        src.append(rows[keep])
        dst.append(cols[keep])
    if cfg.random_edges:
        r = np.repeat(np.arange(n), cfg.random_edges)
        c = rng.integers(0, n - 1, size=len(r))
        c = c + (c >= r)  # never a self-loop
        src.append(r)
        dst.append(c)
    src, dst = np.concatenate(src), np.concatenate(dst)
    if not cfg.directed:
        src, dst = np.minimum(src, dst), np.maximum(src, dst)
    _, first = np.unique(src * n + dst, return_index=True)
    src, dst = src[first], dst[first]
    w = dist(src, dst) / scale
    n_vertices = n
    if cfg.virtual_vertices:
        if points is None:
            raise ValueError("virtual_vertices need point coordinates: fit on points, not a distance matrix")
        from sklearn.cluster import KMeans

        kv = min(cfg.virtual_vertices, n)
        km = KMeans(n_clusters=kv, n_init=1, random_state=seed).fit(points)
        cent = km.cluster_centers_
        vid = n + np.arange(kv)
        member = n + km.labels_
        a, b = np.triu_indices(kv, 1)
        src = np.r_[src, np.arange(n), vid[a]]
        dst = np.r_[dst, member, vid[b]]
        w = np.r_[
            w,
            np.linalg.norm(points - cent[km.labels_], axis=1) / scale,
            np.linalg.norm(cent[a] - cent[b], axis=1) / scale,
        ]
        n_vertices = n + kv
    if cfg.squared:
        w = w**2
    w = np.maximum(w, 1e-6)  # coincident points: a tiny positive weight
    if default_distance is None:
        default_distance = float(2 * np.max(w)) if len(w) else 1.0
    return Graph(n_vertices, src, dst, w, directed=cfg.directed, init_p=cfg.init_p,
                 default_distance=default_distance, n_data=n)  # fmt: skip
