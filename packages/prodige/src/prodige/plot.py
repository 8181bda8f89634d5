"""A 2-D picture of a learned graph: vertices at the classical-MDS layout of their graph
distances, kept edges drawn, vertices coloured by label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from papercore.io import atomic_path
from prodige.graph import Graph
from prodige.paths import pairwise_distances

__all__ = ["classical_mds", "plot_graph"]


def classical_mds(D: np.ndarray, d: int = 2) -> np.ndarray:
    """Torgerson's classical MDS: the top ``d`` eigenvectors of the double-centred ``-D^2 / 2``."""
    n = len(D)
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ (D**2) @ J
    vals, vecs = np.linalg.eigh(B)
    top = np.argsort(vals)[::-1][:d]
    return vecs[:, top] * np.sqrt(np.maximum(vals[top], 0))


def plot_graph(graph: Graph, path, labels=None, title: str = "") -> Path:
    """Write a PNG of the eval-mode graph laid out in 2-D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    Dg = pairwise_distances(graph, sources=np.arange(graph.n_vertices), targets=np.arange(graph.n_vertices))
    Y = classical_mds(Dg)
    t = graph.edge_table("eval")
    fig, ax = plt.subplots(figsize=(6.5, 6))
    segs = np.stack([Y[t["source"]], Y[t["target"]]], 1)
    ax.add_collection(LineCollection(segs, colors="0.6", linewidths=0.4, alpha=0.6))
    n = graph.n_data
    sc = ax.scatter(Y[:n, 0], Y[:n, 1], c=labels if labels is not None else "C0", cmap="tab10", s=9, zorder=3)
    if graph.n_vertices > n:
        ax.scatter(Y[n:, 0], Y[n:, 1], marker="*", c="k", s=40, zorder=4, label="virtual vertices")
        ax.legend(loc="best", fontsize=8)
    if labels is not None:
        fig.colorbar(sc, ax=ax, fraction=0.04)
    ax.set_title(title or f"{graph.n_kept()} kept edges, {graph.params_per_vertex():.2f} params/vertex")
    ax.set_xticks([])
    ax.set_yticks([])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
