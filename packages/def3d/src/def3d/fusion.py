r"""Fusing per-patch and per-view predictions over a whole shape.

Each point gets the values predicted for it by every patch (or every range image) that sees it,
then one **combiner** reduces them: ``min``; ``adv60`` (DEF: keep the values inside the central
60% band :math:`[q_{0.2}, q_{0.8}]` of the point's values, then take their minimum); ``mean``;
``median``. A point seen by nothing gets the upper bound 1.

Range images are fused by reprojection: a 3-D point is projected onto view ``i``'s image plane; if
the four pixels around it are foreground and their depths agree with the point's depth within
``factor * r`` (the point is visible there), view ``i`` contributes the bilinear interpolation
of its predictions (DEF interpolates with a bilinear spline over the k nearest pixels).
"""

from __future__ import annotations

import torch

__all__ = ["COMBINERS", "combine", "fuse_patches", "fuse_views"]

COMBINERS = ("min", "adv60", "mean", "median")


def combine(values: torch.Tensor, method: str = "min", empty: float = 1.0) -> torch.Tensor:
    """Reduce ``values [N, V]`` (NaN: no value) along views with a combiner of :data:`COMBINERS`."""
    if method not in COMBINERS:
        raise ValueError(f"unknown combiner {method!r}: choose from {', '.join(COMBINERS)}")
    v = values.double()
    has = torch.isfinite(v)
    big = torch.where(has, v, torch.full_like(v, float("inf")))
    if method == "min":
        out = big.min(1).values
    elif method == "mean":
        out = torch.where(has, v, 0).sum(1) / has.sum(1).clamp_min(1)
    elif method == "median":
        out = torch.nanquantile(v, 0.5, dim=1) if v.shape[1] else v.new_full((len(v),), empty)
    else:
        lo, hi = (
            torch.nanquantile(v, 0.2, dim=1, keepdim=True),
            torch.nanquantile(v, 0.8, dim=1, keepdim=True),
        )
        band = has & (v >= lo - 1e-12) & (v <= hi + 1e-12)
        out = torch.where(band.any(1), torch.where(band, v, float("inf")).min(1).values, big.min(1).values)
    return torch.where(has.any(1), out, torch.full_like(out, empty)).float()


def fuse_patches(n: int, indices, values, method: str = "min", empty: float = 1.0) -> torch.Tensor:
    """Fuse patch predictions ``values [P, M]`` of the points ``indices [P, M]`` of a cloud of ``n`` points."""
    idx = torch.as_tensor(indices).reshape(-1)
    val = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    counts = torch.bincount(idx, minlength=n)
    V = int(counts.max()) if len(idx) else 0
    table = torch.full((n, max(V, 1)), float("nan"), dtype=torch.float64)
    order = torch.argsort(idx, stable=True)
    idx_s = idx[order]
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(idx_s)) - start[idx_s]
    table[idx_s, slot] = val[order]
    return combine(table, method, empty)


def _project(points: torch.Tensor, view: dict):
    ex, ey, ez = view["frame"].double()
    rel = points.double() - view["origin"].double()
    H, W = view["depth"].shape
    u = rel @ ex / view["pitch"] + (W - 1) / 2
    v = rel @ ey / view["pitch"] + (H - 1) / 2
    return u, v, rel @ ez


def fuse_views(points, views: list[dict], preds: list[torch.Tensor], resolution: float, method: str = "min",
               factor: float = 1.0, empty: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Fuse per-view predictions ``preds[i] [H, W]`` onto ``points [N, 3]`` (see the module docstring).

    ``views`` are :func:`def3d.data.render_view` dicts (``frame``, ``origin``, ``pitch``, ``depth``).
    """
    p = torch.as_tensor(points, dtype=torch.float64)
    cols = []
    for view, pred in zip(views, preds):
        depth = view["depth"].double()
        H, W = depth.shape
        u, v, z = _project(p, view)
        u0, v0 = u.floor().long(), v.floor().long()
        u0c, v0c = u0.clamp(0, W - 2), v0.clamp(0, H - 2)
        fu, fv = (u - u0c).clamp(0, 1), (v - v0c).clamp(0, 1)
        inside = (u > -0.5) & (v > -0.5) & (u < W - 0.5) & (v < H - 0.5)
        pred = torch.as_tensor(pred, dtype=torch.float64)
        num = torch.zeros(len(p), dtype=torch.float64)
        den = torch.zeros(len(p), dtype=torch.float64)
        for du, dv, w in (
            (0, 0, (1 - fu) * (1 - fv)),
            (1, 0, fu * (1 - fv)),
            (0, 1, (1 - fu) * fv),
            (1, 1, fu * fv),
        ):
            uu, vv = u0c + du, v0c + dv
            dz = depth[vv, uu]
            # the pixel's 3-D point must lie within factor * r of the point (visibility, same surface)
            lateral = ((uu - u) ** 2 + (vv - v) ** 2) * view["pitch"] ** 2
            close = torch.isfinite(dz) & (lateral + (dz - z) ** 2 < (factor * resolution) ** 2)
            w = torch.where(close, w + 1e-9, 0)
            num += w * torch.where(close, pred[vv, uu], 0)
            den += w
        ok = inside & (den > 0)
        val = num / den.clamp_min(1e-30)
        cols.append(torch.where(ok, val, float("nan")))
    table = torch.stack(cols, 1) if cols else torch.full((len(p), 1), float("nan"))
    return combine(table, method, empty)
