"""Scoring a vectorisation against the truth: raster IoU, skeleton distances, primitive counts."""

from __future__ import annotations

import numpy as np

from vectorize.drawing import Drawing
from vectorize.raster import iou, render, skeleton_distances


def score(pred: Drawing | np.ndarray, truth: Drawing, n_pred: int | None = None) -> dict:
    """Metrics of a prediction (a drawing, or an ink map with its primitive count ``n_pred``).

    ``iou``: soft raster IoU ``sum min / sum max`` of the antialiased renders of prediction and truth
    (``iou_mask``: IoU of the masks at 0.5, which a 0.1 px shift of a 1 px line can halve);
    ``d_h``/``d_m``: Hausdorff and mean minimal deviation between their skeletons (px);
    ``n``: primitives; ``n_ratio``: n / the truth's count.
    """
    t = render(truth)
    p = render(pred) if isinstance(pred, Drawing) else pred
    n = len(pred) if isinstance(pred, Drawing) else int(n_pred or 0)
    d_h, d_m = skeleton_distances(p, t)
    return {
        "iou": iou(p, t, None),
        "iou_mask": iou(p, t),
        "d_h": d_h,
        "d_m": d_m,
        "n": n,
        "n_ratio": n / max(len(truth), 1),
    }


def summarize(rows: list[dict], key: str = "method") -> dict:
    """``{method: {metric: (mean, std)}}`` over the rows."""
    out: dict = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return {
        m: {
            k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
            for k in rs[0]
            if k != key and isinstance(rs[0][k], (int, float))
        }  # fmt: skip
        for m, rs in out.items()
    }


def table(summary: dict, metrics=("iou", "d_h", "d_m", "n_ratio")) -> str:
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for m, s in summary.items():
        lines.append(f"| {m} | " + " | ".join(f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for k in metrics) + " |")
    return "\n".join(lines)
