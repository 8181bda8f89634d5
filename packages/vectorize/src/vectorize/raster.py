"""Our antialiased torch rasteriser of strokes, and the raster metrics.

A stroke is a chain of straight pieces (a Bézier is flattened into ``k`` pieces). For a pixel centre
``p`` and a piece ``a -> b`` with along-axis coordinate ``s`` and distance ``d`` (the perpendicular
distance inside the piece, the distance to the nearer end beyond it: round joins), the coverage is

    c(p) = clip(w/2 - d + 1/2, 0, 1) * clip(s + 1/2, 0, 1)  (the latter at a stroke's start cap,
                                                             and symmetrically at its end cap),

a one-pixel linear ramp across every edge (box-filter antialiasing of a straight edge). A stroke is
the max of its pieces; strokes are composited like paint, ``1 - prod_k (1 - c_k)`` (as cairo and
browsers draw an SVG), ink = 1.
"""

from __future__ import annotations

import numpy as np
import torch

from vectorize.drawing import Drawing, bezier_points

CURVE_PIECES = 16


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def segments(d: Drawing, k: int = CURVE_PIECES) -> np.ndarray:
    """``[S, 13]`` pieces ``(ax, ay, bx, by, width, start point, start tangent, end point, end
    tangent)`` of every stroke: the start and end of the piece's *stroke* carry its butt caps."""
    L = d.lines
    t = _unit(L[:, 2:4] - L[:, 0:2])
    rows = [np.concatenate([L[:, :5], L[:, 0:2], t, L[:, 2:4], t], 1)]
    if len(d.curves):
        C = d.curves
        pts = bezier_points(C, k)  # [M, k+1, 2]
        a, b = pts[:, :-1].reshape(-1, 2), pts[:, 1:].reshape(-1, 2)
        t0 = np.where(np.linalg.norm(C[:, 2:4] - C[:, 0:2], axis=1, keepdims=True) > 1e-9, C[:, 2:4] - C[:, 0:2],
                      C[:, 4:6] - C[:, 0:2])  # fmt: skip
        t1 = np.where(np.linalg.norm(C[:, 4:6] - C[:, 2:4], axis=1, keepdims=True) > 1e-9, C[:, 4:6] - C[:, 2:4],
                      C[:, 4:6] - C[:, 0:2])  # fmt: skip
        caps = np.concatenate([C[:, 6:7], C[:, 0:2], _unit(t0), C[:, 4:6], _unit(t1)], 1)
        rows.append(np.concatenate([a, b, np.repeat(caps, k, 0)], 1))
    return np.concatenate(rows, 0)


def coverage(seg: torch.Tensor, px: torch.Tensor, py: torch.Tensor, ramp: float = 1.0) -> torch.Tensor:
    """Coverage ``[..., S, P]`` of pieces ``seg [..., S, 13]`` at pixel centres ``px, py [P]``
    (``ramp = 0``: the inside test, 0 or 1)."""
    ax, ay, bx, by, w, sx, sy, sdx, sdy, ex, ey, edx, edy = (t[..., None] for t in seg.unbind(-1))
    ex_, ey_ = bx - ax, by - ay
    L = torch.sqrt(ex_**2 + ey_**2).clamp_min(1e-6)
    rx, ry = px - ax, py - ay
    s = (rx * ex_ + ry * ey_) / L  # along the piece, 0 at a
    perp = (rx * ey_ - ry * ex_).abs() / L
    da = torch.sqrt(rx**2 + ry**2)
    db = torch.sqrt((px - bx) ** 2 + (py - by) ** 2)
    d = torch.where(s < 0, da, torch.where(s > L, db, perp))  # round joins between pieces
    s0 = (px - sx) * sdx + (py - sy) * sdy  # past the stroke's start cap when < 0
    s1 = (ex - px) * edx + (ey - py) * edy  # past its end cap when < 0
    if ramp == 0:
        return ((d <= w / 2) & (s0 >= 0) & (s1 >= 0)).to(px.dtype)
    return (w / 2 - d + 0.5).clamp(0, 1) * (s0 + 0.5).clamp(0, 1) * (s1 + 0.5).clamp(0, 1)


def _composite(c: torch.Tensor, sid: torch.Tensor) -> torch.Tensor:
    """Pieces' coverage ``[S, P]`` -> max within each stroke -> paint compositing over strokes."""
    per = torch.zeros(int(sid.max()) + 1, c.shape[1], dtype=c.dtype, device=c.device)
    per = per.scatter_reduce(0, sid[:, None].expand_as(c), c, "amax")
    return 1 - torch.prod(1 - per, 0)


def render(d: Drawing, tile: int = 64, k: int = CURVE_PIECES, device: str | torch.device = "cpu",
           ss: int = 1) -> np.ndarray:  # fmt: skip
    """The drawing's ink coverage ``[height, width]`` in [0, 1] (tiled: any page size): the fraction
    of ``ss x ss`` sub-pixel samples inside a stroke (``ss = 1``: the one-pixel edge ramp instead)."""
    H, W = d.height, d.width
    out = np.zeros((H, W), np.float32)
    seg = segments(d, k)
    if not len(seg):
        return out
    lo = np.minimum(seg[:, 0:2], seg[:, 2:4]) - seg[:, 4:5] / 2 - 1
    hi = np.maximum(seg[:, 0:2], seg[:, 2:4]) + seg[:, 4:5] / 2 + 1
    segt = torch.as_tensor(seg, dtype=torch.float32, device=device)
    stroke = np.concatenate([np.arange(len(d.lines)), len(d.lines) + np.repeat(np.arange(len(d.curves)), k)])
    for y0 in range(0, H, tile):
        for x0 in range(0, W, tile):
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            sel = (lo[:, 0] < x1) & (hi[:, 0] > x0) & (lo[:, 1] < y1) & (hi[:, 1] > y0)
            if not sel.any():
                continue
            yy, xx = torch.meshgrid(
                torch.arange(y0, y1, device=device) + 0.5,
                torch.arange(x0, x1, device=device) + 0.5,
                indexing="ij",
            )
            sg = segt[torch.as_tensor(sel, device=device)]
            _, sid = np.unique(stroke[sel], return_inverse=True)
            sid = torch.as_tensor(sid, device=device)
            if ss == 1:
                c = _composite(coverage(sg, xx.reshape(-1), yy.reshape(-1)), sid)
            else:
                off = (torch.arange(ss, device=device) + 0.5) / ss - 0.5
                c = 0
                for oy in off:
                    for ox in off:
                        c = c + _composite(
                            coverage(sg, (xx + ox).reshape(-1), (yy + oy).reshape(-1), ramp=0), sid
                        )
                c = c / ss**2
            out[y0:y1, x0:x1] = c.reshape(y1 - y0, x1 - x0).cpu().numpy()
    return out


def iou(a: np.ndarray, b: np.ndarray, threshold: float | None = 0.5) -> float:
    """Raster IoU of two ink maps: of the masks ``> threshold``, or (``threshold=None``) the soft
    IoU ``sum min(a, b) / sum max(a, b)`` of the coverages. Two empty maps have IoU 1."""
    if threshold is None:
        den = np.maximum(a, b).sum()
        return float(np.minimum(a, b).sum() / den) if den > 0 else 1.0
    A, B = a > threshold, b > threshold
    u = (A | B).sum()
    return float((A & B).sum() / u) if u else 1.0


def skeleton_distances(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Hausdorff ``d_H`` and mean minimal deviation ``d_M`` (px) between the skeletons of two ink maps.

    ``d_M`` is the symmetric mean of each skeleton's mean distance to the other's. An empty side
    gives ``inf``.
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    sp, st = skeletonize(pred > 0.5), skeletonize(truth > 0.5)
    if not sp.any() or not st.any():
        return (0.0, 0.0) if sp.any() == st.any() else (float("inf"), float("inf"))
    dt_t, dt_p = distance_transform_edt(~st), distance_transform_edt(~sp)
    a, b = dt_t[sp], dt_p[st]
    return float(max(a.max(), b.max())), float((a.mean() + b.mean()) / 2)
