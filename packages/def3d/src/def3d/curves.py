r"""Feature curves from a distance field: polylines and corners.

With the resolution :math:`r` as unit (see :class:`def3d.config.CurveConfig`):

1. keep the points with predicted :math:`\hat d < \tau r`;
2. farthest-point sampling at spacing :math:`s r` (a blue-noise skeleton of the sharp band);
3. **corners**: for each kept point, the eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \lambda_3` of the
   covariance of its neighbours within :math:`R_c r`; cornerness :math:`\lambda_2 / \lambda_1` is
   near 0 along a curve and large where curves meet or turn; points above the threshold are
   clustered (connected components at radius :math:`\ell r`), one corner per cluster;
4. **curves**: the other points farther than :math:`R_c r` from a corner, clustered the same way;
   each cluster is ordered along the longest path of its minimum spanning tree, resampled
   to nodes every :math:`4r` (closed when its ends meet), and its ends are attached to the nearest
   corners: a graph of polylines;
5. **energy**: node positions :math:`x` (corners shared) minimise, by Adam,

   .. math:: E(x) = \operatorname{mean}_{p}\, \big|\operatorname{dist}(p, \Gamma(x)) - \hat d(p)\big|
             + \mu \sum_i \| x_{i-1} - 2x_i + x_{i+1} \|^2 / r^2,

   over the kept points :math:`p`, where :math:`\Gamma(x)` is the polyline graph: the curves pass at
   the predicted distance from every sharp-band point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from def3d.config import CurveConfig

__all__ = ["Curves", "extract_curves"]


@dataclass
class Curves:
    """Corners ``[C, 3]`` and polylines (lists of ``[m, 3]``); ``ends[i]`` = corner ids of polyline i's ends (-1: free)."""

    corners: np.ndarray
    polylines: list[np.ndarray] = field(default_factory=list)
    ends: list[tuple[int, int]] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)

    def to_obj(self, path) -> Path:
        """Wavefront OBJ: ``v`` lines (corners first), ``l`` polylines, ``p`` corners."""
        from papercore.io import atomic_path

        lines, n = [], 0
        for c in self.corners:
            lines.append(f"v {c[0]:.6f} {c[1]:.6f} {c[2]:.6f}")
        n = len(self.corners)
        refs = []
        for pl in self.polylines:
            lines += [f"v {q[0]:.6f} {q[1]:.6f} {q[2]:.6f}" for q in pl]
            refs.append(" ".join(str(n + 1 + i) for i in range(len(pl))))
            n += len(pl)
        lines += [f"l {r}" for r in refs]
        lines += [f"p {i + 1}" for i in range(len(self.corners))]
        with atomic_path(path) as tmp:
            Path(tmp).write_text("\n".join(lines) + "\n")
        return Path(path)

    def to_dict(self) -> dict:
        return {
            "corners": np.asarray(self.corners).tolist(),
            "polylines": [{"points": np.asarray(p).tolist(), "ends": list(e), "closed": c}
                          for p, e, c in zip(self.polylines, self.ends, self.closed)],
        }  # fmt: skip

    def to_json(self, path) -> Path:
        from papercore.io import write_json

        write_json(path, self.to_dict())
        return Path(path)


def _fps_radius(p: np.ndarray, radius: float) -> np.ndarray:
    """Farthest-point sampling until every point is within ``radius`` of a chosen one."""
    t = torch.from_numpy(p)
    dist = torch.full((len(p),), np.inf, dtype=t.dtype)
    idx, cur = [], 0
    while True:
        idx.append(cur)
        dist = torch.minimum(dist, (t - t[cur]).pow(2).sum(1))
        cur = int(dist.argmax())
        if float(dist[cur]) <= radius * radius:
            return np.array(idx)


def _components(p: np.ndarray, radius: float) -> list[np.ndarray]:
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if not len(p):
        return []
    A = cKDTree(p).sparse_distance_matrix(cKDTree(p), radius, output_type="coo_matrix")
    n, lab = connected_components(A, directed=False)
    return [np.flatnonzero(lab == i) for i in range(n)]


def _longest_path(p: np.ndarray, radius: float) -> np.ndarray:
    """Indices of ``p`` along the diameter of its minimum spanning tree (radius graph, Euclidean weights)."""
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree, shortest_path
    from scipy.spatial import cKDTree

    if len(p) < 3:
        return np.arange(len(p))
    A = cKDTree(p).sparse_distance_matrix(cKDTree(p), radius, output_type="coo_matrix").tocsr()
    A.data = A.data + 1e-12
    T = minimum_spanning_tree(A)
    T = T + T.T
    d = shortest_path(T, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d), d, -1)))
    d, pred = shortest_path(T, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(d), d, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    del breadth_first_order
    return np.array(path[::-1])


def _resample(p: np.ndarray, path: np.ndarray, pts: np.ndarray, step: float) -> np.ndarray:
    """Nodes every ``step`` along ``p[path]``; each node the mean of the cluster points ``pts`` near it."""
    from scipy.spatial import cKDTree

    q = p[path]
    s = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(q, axis=0), axis=1))])
    m = max(2, int(round(s[-1] / step)) + 1)
    at = np.linspace(0, s[-1], m)
    nodes = np.stack([np.interp(at, s, q[:, j]) for j in range(3)], 1)
    tree = cKDTree(pts)
    out = []
    for x in nodes:
        nb = tree.query_ball_point(x, step / 2)
        out.append(pts[nb].mean(0) if nb else x)
    return np.array(out)


def _cornerness(p: np.ndarray, ref: np.ndarray, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    tree = cKDTree(ref)
    out = np.zeros(len(p))
    for i, nb in enumerate(tree.query_ball_point(p, radius)):
        if len(nb) < 4:
            continue
        q = ref[nb] - ref[nb].mean(0)
        ev = np.linalg.eigvalsh(q.T @ q)
        out[i] = ev[1] / max(ev[2], 1e-30)
    return out


def _seg_dist(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n, m]`` distances from points to segments ``a[m] -> b[m]``."""
    ab = b - a
    t = (((p[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return (p[:, None] - a[None] - t[..., None] * ab[None]).norm(dim=-1)


def extract_curves(points, distances, resolution: float, cfg: CurveConfig | None = None) -> Curves:
    """Corners and polylines from per-point distances ``distances`` (world units, same as ``points``).

    Parameters
    ----------
    points : array ``[N, 3]``
    distances : array ``[N]``
        Predicted (or true) distance to the nearest sharp curve, in the units of ``points``.
    resolution : float
        The sampling resolution r; every length of ``cfg`` is in units of r.
    """
    cfg = cfg or CurveConfig()
    r = float(resolution)
    P = np.asarray(points, np.float64)
    D = np.asarray(distances, np.float64)
    keep = cfg.threshold * r > D
    S, DS = P[keep], D[keep]
    if len(S) < cfg.min_points:
        return Curves(np.zeros((0, 3)))
    fi = _fps_radius(S, cfg.spacing * r)
    F = S[fi]
    Rc = cfg.corner_radius * r
    cness = _cornerness(F, S, Rc)
    cand = cness > cfg.cornerness
    corners = []
    for comp in _components(F[cand], Rc):
        if len(comp) >= 1:
            pts = F[cand][comp]
            corners.append(pts[np.argmax(cness[cand][comp])])
    C = np.array(corners).reshape(-1, 3)
    if len(C):
        from scipy.spatial import cKDTree

        near = cKDTree(C).query(S)[0] < Rc
    else:
        near = np.zeros(len(S), bool)
    rest = S[~near]
    polys, ends, closed = [], [], []
    for comp in _components(rest, cfg.link * r):
        if len(comp) < cfg.min_points:
            continue
        q = rest[comp]
        q = q[_fps_radius(q, cfg.spacing * r)]
        path = _longest_path(q, cfg.link * r)
        nodes = _resample(q, path, q, cfg.node_spacing * r)
        e = [-1, -1]
        for side, x in ((0, nodes[0]), (1, nodes[-1])):
            if len(C):
                dc = np.linalg.norm(C - x, axis=1)
                j = int(dc.argmin())
                if dc[j] < Rc + 2 * cfg.link * r:
                    e[side] = j
        is_closed = (
            e == [-1, -1]
            and np.linalg.norm(nodes[0] - nodes[-1]) < 2 * cfg.node_spacing * r
            and len(nodes) > 3
        )
        polys.append(nodes)
        ends.append(tuple(e))
        closed.append(bool(is_closed))
    used = sorted({j for e in ends for j in e if j >= 0})
    remap = {j: i for i, j in enumerate(used)}
    C = C[used] if len(used) else np.zeros((0, 3))
    ends = [tuple(remap.get(j, -1) for j in e) for e in ends]
    out = Curves(C, polys, ends, closed)
    if cfg.opt_steps and polys:
        _optimise(out, F, DS[fi], r, cfg.opt_steps)
    return out


def _optimise(curves: Curves, S: np.ndarray, DS: np.ndarray, r: float, steps: int, mu: float = 0.1) -> None:
    """Adam on the node positions of ``curves`` (in place), corners shared between polylines."""
    nodes = [np.asarray(curves.corners).reshape(-1, 3)]
    n = len(nodes[0])
    chains = []  # node indices of each polyline, corners by their shared index
    for pl, e, cl in zip(curves.polylines, curves.ends, curves.closed):
        idx = list(range(n, n + len(pl)))
        nodes.append(pl)
        n += len(pl)
        if e[0] >= 0:
            idx = [e[0]] + idx
        if e[1] >= 0:
            idx = idx + [e[1]]
        if cl:
            idx = idx + idx[:1]
        chains.append(idx)
    X = torch.tensor(np.concatenate(nodes), dtype=torch.float64, requires_grad=True)
    seg = torch.tensor([(a, b) for ch in chains for a, b in zip(ch[:-1], ch[1:])], dtype=torch.long)
    tri = torch.tensor(
        [t for ch in chains for t in zip(ch[:-2], ch[1:-1], ch[2:])], dtype=torch.long
    ).reshape(-1, 3)
    p, d = torch.from_numpy(S), torch.from_numpy(DS)
    m1, m2, lr = (
        torch.zeros_like(X),
        torch.zeros_like(X),
        0.05 * r,
    )  # Adam, by hand (torch.optim imports dynamo: seconds)
    for it in range(steps):
        if it % 20 == 0:  # each point's candidate segments: the 4 nearest at the current positions
            with torch.no_grad():
                cand = (
                    _seg_dist(p, X[seg[:, 0]], X[seg[:, 1]]).topk(min(4, len(seg)), 1, largest=False).indices
                )
        a, b = X[seg[cand, 0]], X[seg[cand, 1]]  # [n, 4, 3]
        ab = b - a
        t = (((p[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
        dist = (p[:, None] - a - t[..., None] * ab).norm(dim=-1).min(1).values
        loss = (dist - d).abs().mean() / r
        if len(tri):
            loss = loss + mu * (X[tri[:, 0]] - 2 * X[tri[:, 1]] + X[tri[:, 2]]).pow(2).sum(1).mean() / r**2
        (g,) = torch.autograd.grad(loss, X)
        with torch.no_grad():
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            X -= lr * (m1 / (1 - 0.9 ** (it + 1))) / ((m2 / (1 - 0.999 ** (it + 1))).sqrt() + 1e-12)
    X = X.detach().numpy()
    curves.corners = X[: len(curves.corners)].copy()
    curves.polylines = [X[ch[: len(ch) - int(cl)]].copy() for ch, cl in zip(chains, curves.closed)]
