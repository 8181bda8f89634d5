r"""DEF's metrics on per-point fields, and curve metrics.

For patches :math:`P` with predictions :math:`\hat d` and targets :math:`d` (in units of the
resolution :math:`r` for thresholds):

* mRMSE: mean over patches of :math:`\sqrt{\operatorname{mean}_p (\hat d - d)^2}`; q95RMSE: their 95% quantile;
* mRecall@t, mFPR@t: binarise :math:`d < t` and :math:`\hat d < t`; recall = TP / P and
  FPR = FP / N per patch, averaged over the patches that contain positives (t = 1r, 4r).

Curves: symmetric Hausdorff and Chamfer distances between dense samples of two curve sets;
corner and edge count errors.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["curve_metrics", "field_metrics", "sample_polylines", "true_corners"]


def field_metrics(pred, target, resolution: float, upper: float = 1.0, thresholds=(1, 4)) -> dict[str, float]:
    """``pred``, ``target``: ``[B, N]`` fields in units of ``upper`` (or lists of ``[N_i]``); masks: NaN targets are ignored."""
    preds = [torch.as_tensor(p, dtype=torch.float64).reshape(-1) for p in pred]
    targs = [torch.as_tensor(t, dtype=torch.float64).reshape(-1) for t in target]
    rmse, out = [], {}
    rec = {t: [] for t in thresholds}
    fpr = {t: [] for t in thresholds}
    for p, d in zip(preds, targs):
        ok = torch.isfinite(d)
        p, d = p[ok], d[ok]
        if not len(d):
            continue
        rmse.append(float((p - d).pow(2).mean().sqrt()))
        for t in thresholds:
            thr = t * resolution / upper
            pos, hat = d < thr, p < thr
            if pos.any():
                rec[t].append(float((pos & hat).sum() / pos.sum()))
                neg = ~pos
                fpr[t].append(float((neg & hat).sum() / neg.sum()) if neg.any() else 0.0)
    out["mRMSE"] = float(np.mean(rmse))
    out["q95RMSE"] = float(np.quantile(rmse, 0.95))
    for t in thresholds:
        out[f"mRecall@{t}r"] = float(np.mean(rec[t])) if rec[t] else float("nan")
        out[f"mFPR@{t}r"] = float(np.mean(fpr[t])) if fpr[t] else float("nan")
    return out


def sample_polylines(polylines, step: float) -> np.ndarray:
    """Points every ``step`` (at most) along polylines ``[m_i, 3]``."""
    out = []
    for pl in polylines:
        pl = np.asarray(pl, np.float64)
        if len(pl) == 1:
            out.append(pl)
        for a, b in zip(pl[:-1], pl[1:]):
            n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
            out.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
    return np.concatenate(out) if out else np.zeros((0, 3))


def curve_metrics(polylines, corners, true_edges, true_corners, step: float) -> dict[str, float]:
    """Hausdorff/Chamfer between predicted polylines and true curves (papercore edges), and count errors."""
    from scipy.spatial import cKDTree

    from papercore.geometry import sample_edges

    P = sample_polylines(polylines, step)
    total = sum(e.length() for e in true_edges)
    T = (
        sample_edges(
            true_edges, max(int(total / step), 16), torch.Generator().manual_seed(0), torch.float64
        ).numpy()
        if true_edges
        else np.zeros((0, 3))
    )
    out = {"n_edges": len(polylines), "n_corners": len(corners)}
    if len(P) and len(T):
        a = cKDTree(T).query(P)[0]
        b = cKDTree(P).query(T)[0]
        out["hausdorff"] = float(max(a.max(), b.max()))
        out["chamfer"] = float(a.mean() + b.mean()) / 2
    else:
        out["hausdorff"] = out["chamfer"] = float("inf")
    out["corner_error"] = abs(len(corners) - len(true_corners))
    out["edge_error"] = abs(len(polylines) - len(true_edges))
    return out


def true_corners(edges, tol: float = 1e-6) -> np.ndarray:
    """Points where at least two segment ends meet (the corners of a CAD shape's curve network)."""
    from papercore.geometry import Segment

    ends = [np.asarray(e.a, np.float64) for e in edges if isinstance(e, Segment)]
    ends += [np.asarray(e.b, np.float64) for e in edges if isinstance(e, Segment)]
    if not ends:
        return np.zeros((0, 3))
    E = np.round(np.stack(ends) / tol) * tol
    uniq, count = np.unique(E, axis=0, return_counts=True)
    return uniq[count >= 2]
