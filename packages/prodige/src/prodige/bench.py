"""Distance-compression runs and metrics shared by the CLI and ``benchmarks/``.

Every method is scored on the same full pair set with the relative MSE
:math:`\\sum_{i \\ne j}(\\hat D_{ij} - D_{ij})^2 / \\sum_{i \\ne j} D_{ij}^2` (scale-free), plus the
Spearman correlation of the pair distances and the recall of each point's 10 nearest neighbours.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from prodige import baselines
from prodige.config import ProdigeConfig, ProdigeTrainConfig
from prodige.data import check_distance_matrix, geodesic_distances, load_points
from prodige.init import init_graph
from prodige.paths import pairwise_distances
from prodige.tasks import DistanceTask
from prodige.train import fit_graph

__all__ = ["make_target", "score", "fit_compression", "baseline_scores", "BASELINES"]

BASELINES = ("pca", "mds", "isomap", "poincare", "knn_graph", "mst_graph")


def make_target(data: str = "digits", n: int = 0, metric: str = "euclidean", distances: str | None = None,
                n_neighbors: int = 10, seed: int = 0):  # fmt: skip
    """(points or None, target matrix ``[n, n]``) for built-in data, a points file or a distance file."""
    if distances:
        from prodige.data import load_matrix

        D = check_distance_matrix(load_matrix(distances), name=f"--distances {distances}")
        return (None, D[:n, :n] if n else D)
    X = load_points(data, n, seed)
    if metric == "geodesic":
        return X, geodesic_distances(X, n_neighbors)
    if metric != "euclidean":
        raise ValueError(f"--metric {metric!r}: choose euclidean or geodesic (or pass --distances)")
    from sklearn.metrics import pairwise_distances as pdist

    D = pdist(X)
    np.fill_diagonal(D, 0)
    return X, D


def score(pred: np.ndarray, D: np.ndarray, k: int = 10) -> dict[str, float]:
    from scipy.stats import spearmanr

    n = len(D)
    off = ~np.eye(n, dtype=bool)
    rel = float(((pred - D)[off] ** 2).sum() / (D[off] ** 2).sum())
    rng = np.random.default_rng(0)
    idx = rng.choice(off.sum(), min(200_000, int(off.sum())), replace=False)
    rho = float(spearmanr(pred[off][idx], D[off][idx]).statistic)
    big = np.where(off, 0, np.inf)
    nn_true = np.argsort(D + big, axis=1)[:, :k]
    nn_pred = np.argsort(pred + big + 1e-12 * D, axis=1)[:, :k]  # ties broken by the target
    recall = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(nn_true, nn_pred)]))
    return {"rel_mse": rel, "spearman": rho, f"recall@{k}": recall}


def fit_compression(points, D, cfg: ProdigeConfig, tcfg: ProdigeTrainConfig, seed: int = 0, out=None,
                    resume: bool = False, plot: bool = False):  # fmt: skip
    """Fit a graph to ``D`` (init from ``points`` when given); returns (graph, task, metrics)."""
    task = DistanceTask(distances=D)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if cfg.virtual_vertices and points is not None:
        graph = init_graph(points, None, cfg, scale=task.scale, default_distance=task.max_target(), seed=seed)
    else:
        graph = init_graph(None, D, cfg, scale=task.scale, default_distance=task.max_target(), seed=seed)
    n0 = graph.n_edges
    if out is not None and resume:
        pass  # the trainer restores the edge table and the optimizers from out/checkpoint
    res = fit_graph(graph, task, cfg, tcfg, out=out, seed=seed, resume=resume, plot=plot)
    pred = pairwise_distances(graph) * task.scale
    metrics = score(pred, D)
    metrics.update(
        params_per_vertex=graph.params_per_vertex(), bits_per_vertex=graph.bits_per_vertex(),
        kept_edges=graph.n_kept(), initial_edges=n0, parameters=graph.num_parameters(),
        seconds=round(time.perf_counter() - t0, 2), steps=res.steps, long_paths=res.long_paths,
        steps_per_s=res.steps / max(res.seconds, 1e-9),
    )  # fmt: skip
    return graph, task, metrics


def baseline_scores(
    points, D, ppv: float, names=BASELINES, seed: int = 0, n_vertices: int | None = None
) -> dict:
    """Relative MSE (and the other metrics) of each equal-size baseline: ``d = floor(ppv)`` floats
    per vertex for vectors, ``(ppv n - n - 1) / 2`` edges for fixed graphs."""
    n = len(D)
    d = max(1, int(np.floor(ppv)))
    E = (int(ppv * n) - n - 1) // 2
    out = {}
    for name in names:
        t0 = time.perf_counter()
        if name == "pca":
            if points is None:
                continue
            pred = baselines.pca_distances(points, min(d, points.shape[1]), seed)  # all of them when fewer
        elif name == "mds":
            pred = baselines.mds_distances(D, d, seed)
        elif name == "isomap":
            if points is None:
                continue
            pred = baselines.isomap_distances(points, d)
        elif name == "poincare":
            pred = baselines.poincare_mds_distances(D, d, seed, steps=1000, batch=16384)
        elif name == "knn_graph":
            pred = baselines.fixed_graph_distances(D, E, "knn")
        elif name == "mst_graph":
            pred = baselines.fixed_graph_distances(D, E, "mst")
        else:
            raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")
        out[name] = score(pred, D) | {"seconds": round(time.perf_counter() - t0, 2)}
    return out
