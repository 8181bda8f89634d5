r"""Classical baselines, scored with the same metrics as the networks.

* :class:`PCABaseline` (points): the surface variation of each point's ``k`` neighbours,
  :math:`\sigma(p) = \lambda_0 / (\lambda_0 + \lambda_1 + \lambda_2)` (eigenvalues of the local
  covariance, ascending; Pauly et al. 2002), thresholded; the field is then the Euclidean distance
  to the nearest point above the threshold, clipped. The threshold is chosen on training patches
  (``fit``), never on test data.
* :func:`dihedral_edges` (meshes): the oracle when a mesh is given: mesh edges whose dihedral
  angle exceeds ``angle`` degrees (and open boundary edges), as segments.
"""

from __future__ import annotations

import numpy as np
import torch

from papercore.geometry import Segment, distance_to_edges, knn

__all__ = ["PCABaseline", "dihedral_edges", "dihedral_field", "surface_variation"]


def surface_variation(points: torch.Tensor, k: int = 16) -> torch.Tensor:
    """:math:`\\lambda_0 / \\sum\\lambda` over the ``k`` nearest neighbours of each point (``[..., N]``, in [0, 1/3])."""
    p = points.float()
    _, idx = knn(p, p, k, backend="torch")
    nb = p[idx] if p.ndim == 2 else p[torch.arange(len(p))[:, None, None], idx]
    c = nb - nb.mean(-2, keepdim=True)
    cov = c.transpose(-1, -2) @ c / k
    ev = torch.linalg.eigvalsh(cov.double()).clamp_min(0)
    return (ev[..., 0] / ev.sum(-1).clamp_min(1e-30)).float()


def _field(points: torch.Tensor, sharp: torch.Tensor, upper: float) -> torch.Tensor:
    out = torch.full(points.shape[:1], float(upper))
    if sharp.any():
        d, _ = knn(points.float(), points[sharp].float(), 1, backend="torch")
        out = d[:, 0].sqrt().clamp_max(upper)
    return out


class PCABaseline:
    """Surface variation -> threshold -> distance field (scikit-learn style).

    Parameters
    ----------
    k : int
        Neighbours of the covariance.
    upper : float
        Clipping bound of the field, in the units of the targets.
    thresholds : sequence of float, optional
        Candidates for ``fit``; ``threshold_`` is the one with the lowest training RMSE.
    """

    def __init__(self, k: int = 16, upper: float = 1.0, thresholds=None, threshold: float | None = None):
        self.k, self.upper = k, upper
        self.thresholds = thresholds if thresholds is not None else np.geomspace(0.003, 0.2, 16)
        self.threshold_ = threshold

    def predict(self, points: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
        """Field ``[N]`` (or ``[B, N]``) for clouds in target units."""
        if self.threshold_ is None:
            raise ValueError("call fit() first (or pass threshold=)")
        if points.ndim == 3:
            return torch.stack(
                [
                    self.predict(p, None if score is None else s)
                    for p, s in zip(points, score if score is not None else [None] * len(points))
                ]
            )
        s = surface_variation(points, self.k) if score is None else score
        return _field(points, s > self.threshold_, self.upper)

    def fit(self, points: torch.Tensor, distances: torch.Tensor) -> PCABaseline:
        """Pick the threshold minimising the RMSE on ``points [B, N, 3]`` with fields ``distances [B, N]`` (target units)."""
        scores = [surface_variation(p, self.k) for p in points]
        best = None
        for t in self.thresholds:
            self.threshold_ = float(t)
            err = torch.stack(
                [(self.predict(p, s) - d).pow(2).mean() for p, s, d in zip(points, scores, distances)]
            )
            rmse = float(err.sqrt().mean())
            if best is None or rmse < best[0]:
                best = (rmse, float(t))
        self.threshold_ = best[1]
        return self


def dihedral_edges(vertices, faces, angle: float = 30.0) -> list[Segment]:
    """Mesh edges with a dihedral angle above ``angle`` degrees (between face normals), plus boundary edges.

    Coincident vertices are welded first (STL files repeat each triangle's corners).
    """
    V = np.asarray(vertices, np.float64)
    F = np.asarray(faces, np.int64)
    # weld duplicate vertices (STL stores every triangle's corners apart)
    tol = 1e-9 * max(float(np.ptp(V, 0).max()), 1e-30)
    V, inv = np.unique(np.round(V / tol).astype(np.int64), axis=0, return_inverse=True)
    V = V * tol
    F = inv.reshape(-1)[F]
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    area = np.linalg.norm(n, axis=1)
    ok = area > 1e-15
    n = n / np.where(ok, area, 1)[:, None]
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    fid = np.tile(np.arange(len(F)), 3)
    key = np.sort(e, 1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, fid = key[order], fid[order]
    uniq, start, count = np.unique(key, axis=0, return_index=True, return_counts=True)
    cos = np.cos(np.radians(angle))
    out = []
    for (a, b), s, c in zip(uniq, start, count):
        fs = [f for f in fid[s : s + c] if ok[f]]
        sharp = len(fs) == 1 or (len(fs) >= 2 and min(float(n[fs[0]] @ n[f]) for f in fs[1:]) < cos)
        if sharp:
            out.append(Segment(torch.tensor(V[a]), torch.tensor(V[b])))
    return out


def dihedral_field(points: torch.Tensor, vertices, faces, upper: float, angle: float = 30.0) -> torch.Tensor:
    """Distance of ``points`` to the dihedral-angle edges of a mesh, clipped at ``upper``."""
    edges = dihedral_edges(vertices, faces, angle)
    if not edges:
        return torch.full(points.shape[:1], float(upper))
    return distance_to_edges(points.double(), edges).clamp_max(upper).float()
