"""Built-in data (offline) and input checks.

* ``digits``: scikit-learn's bundled 8x8 digits (1,797 x 64).
* ``swissroll``: :func:`sklearn.datasets.make_swiss_roll` points; with ``metric="geodesic"`` the
  targets are shortest paths of their kNN graph (Isomap's geodesic estimate).
* :func:`random_tree`: a random weighted tree and its path metric (the graph is known exactly).
* Files: ``.npy`` (no pickles) or ``.csv`` arrays of points, or of a distance matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_points", "load_matrix", "geodesic_distances", "random_tree", "check_distance_matrix"]


def load_points(name: str, n: int = 0, seed: int = 0) -> np.ndarray:
    """``digits``, ``swissroll`` (``n`` points, default 1000), or a ``.npy``/``.csv`` file of points."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X = load_digits().data.astype(np.float64)
        return X[:n] if n else X
    if name == "swissroll":
        from sklearn.datasets import make_swiss_roll

        return make_swiss_roll(n or 1000, noise=0.0, random_state=seed)[0]
    X = load_matrix(name)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"{name}: expected an [n, d] array of n >= 2 points, got shape {X.shape}")
    bad = ~np.isfinite(X).all(1)
    if bad.any():
        raise ValueError(
            f"{name}: {int(bad.sum())} row(s) with NaN or inf (first: row {int(np.argmax(bad))}): clean or drop them"
        )
    return X[:n] if n else X


def load_matrix(path: str) -> np.ndarray:
    p = Path(path)
    if p.suffix not in (".npy", ".csv"):
        raise ValueError(f"{path}: unknown data {path!r}: use digits, swissroll, or a .npy/.csv file")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False).astype(np.float64)
    try:
        return np.loadtxt(p, delimiter=",", ndmin=2)
    except ValueError:
        return np.loadtxt(p, delimiter=",", ndmin=2, skiprows=1)


def geodesic_distances(X: np.ndarray, n_neighbors: int = 10) -> np.ndarray:
    """Shortest paths of the symmetric kNN graph (Euclidean edge lengths)."""
    from scipy.sparse.csgraph import connected_components, shortest_path
    from sklearn.neighbors import kneighbors_graph

    A = kneighbors_graph(X, n_neighbors, mode="distance")
    A = A.maximum(A.T)
    n_comp = connected_components(A, directed=False)[0]
    if n_comp > 1:
        raise ValueError(
            f"the {n_neighbors}-NN graph of the points has {n_comp} components, so geodesic distances are "
            "infinite between them: raise --n-neighbors"
        )
    return shortest_path(A, method="D", directed=False)


def random_tree(n: int = 31, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random tree on ``n`` vertices (each vertex ``i > 0`` hangs from a random earlier one) with
    weights uniform in [0.5, 1.5]; returns (path-metric matrix ``[n, n]``, edges ``[n - 1, 2]``)."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(seed)
    parent = np.array([rng.integers(0, i) for i in range(1, n)])
    child = np.arange(1, n)
    w = rng.uniform(0.5, 1.5, n - 1)
    A = csr_array((w, (parent, child)), shape=(n, n))
    return shortest_path(A, directed=False), np.stack([parent, child], 1)


def check_distance_matrix(D, directed: bool = False, name: str = "the distance matrix") -> np.ndarray:
    """A float64 copy of ``D`` after the checks a target metric needs (one clear error each)."""
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"{name} must be square [n, n], got shape {D.shape}")
    if len(D) < 2:
        raise ValueError(f"{name} needs at least 2 points, got {len(D)}")
    if np.isnan(D).any():
        raise ValueError(f"{name} has {int(np.isnan(D).sum())} NaN entries: fill or drop them")
    if np.isinf(D).any():
        raise ValueError(f"{name} has infinite entries: the target is disconnected; fit each component apart")
    if (D < 0).any():
        raise ValueError(f"{name} has negative distances (min {D.min():.3g}): distances must be >= 0")
    if not directed and not np.allclose(D, D.T, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(D).max()))):
        raise ValueError(f"{name} is not symmetric: symmetrise it ((D + D.T) / 2) or fit a directed graph")
    return D
