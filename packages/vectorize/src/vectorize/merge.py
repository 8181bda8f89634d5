"""Patches: splitting a page into 64x64 patches and assembling their drawings; merging across patches.

Merging, in order (lines and curves together):

1. Béziers that are straight within 0.5 px become lines (``--primitives both``);
2. lines within ``max_angle`` whose end points lie within ``max_distance`` of each other's line and
   whose spans overlap or leave a gap of at most ``max_distance`` are replaced by their common span
   (candidates from a shapely STRtree), repeated until nothing merges;
3. greedy removal: primitives are visited from the smallest; one is removed when the raster IoU
   with the target, computed in its neighbourhood, does not drop without it (a line covered by a
   curve, or a curve by lines, goes too);
4. end points (of lines and curves) closer than ``snap`` px are moved to their mean.
"""

from __future__ import annotations

import numpy as np

from vectorize.config import MergeConfig
from vectorize.drawing import Drawing, bezier_points
from vectorize.raster import iou, render
from vectorize.refine import merge_pair

PATCH = 64


def split(ink: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``[N, patch, patch]`` patches of an ink map (padded with zeros) and their origins ``(x0, y0)``."""
    H, W = ink.shape
    Hp, Wp = -(-H // patch) * patch, -(-W // patch) * patch
    pad = np.zeros((Hp, Wp), np.float32)
    pad[:H, :W] = ink
    origins = [(x, y) for y in range(0, Hp, patch) for x in range(0, Wp, patch)]
    return np.stack([pad[y : y + patch, x : x + patch] for x, y in origins]), origins


def assemble(drawings: list[Drawing], origins: list[tuple[int, int]], height: int, width: int) -> Drawing:
    """One page drawing from patch drawings at their origins."""
    parts = [d.shifted(x, y, height, width) for d, (x, y) in zip(drawings, origins)]
    lines = np.concatenate([p.lines for p in parts] + [np.zeros((0, 5))])
    curves = np.concatenate([p.curves for p in parts] + [np.zeros((0, 7))])
    return Drawing(lines, curves, height, width)


def merge_lines(lines: np.ndarray, max_angle: float, max_distance: float) -> np.ndarray:
    """Merge collinear, touching or overlapping lines until nothing merges (see the module doc)."""
    from shapely import STRtree
    from shapely.geometry import LineString

    L = [np.asarray(x, float) for x in lines]
    changed = True
    while changed and len(L) > 1:
        changed = False
        tree = STRtree([LineString([x[:2], x[2:4]]) for x in L])
        alive = np.ones(len(L), bool)
        order = np.argsort([-np.hypot(x[2] - x[0], x[3] - x[1]) for x in L])
        for i in order:
            if not alive[i]:
                continue
            for j in tree.query(LineString([L[i][:2], L[i][2:4]]).buffer(max_distance + L[i][4] / 2)):
                if j == i or not alive[j]:
                    continue
                tol = min(max_distance, max(L[i][4], L[j][4], 1.5) / 2)
                m = merge_pair(L[i], L[j], max_angle, gap=max_distance, max_dist=tol)
                if m is not None:
                    L[i], alive[j], changed = m, False, True
        L = [x for x, a in zip(L, alive) if a]
    return np.array(L).reshape(-1, 5)


def _bbox(d: Drawing) -> np.ndarray:
    """``[N + M, 4]`` boxes (x0, y0, x1, y1) of the lines then the curves, widened by half the width."""
    pl = d.lines[:, :4].reshape(-1, 2, 2)
    pc = bezier_points(d.curves, 8) if len(d.curves) else np.zeros((0, 9, 2))
    w = np.concatenate([d.lines[:, 4], d.curves[:, 6]])[:, None] / 2 + 1
    lo = np.concatenate([pl.min(1), pc.min(1)]) - w
    hi = np.concatenate([pl.max(1), pc.max(1)]) + w
    return np.concatenate([lo, hi], 1)


def prune(d: Drawing, target: np.ndarray) -> Drawing:
    """Greedily remove primitives whose removal does not lower the local raster IoU with ``target``."""
    n_l = len(d.lines)
    box = _bbox(d)
    keep = np.ones(len(d), bool)
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    for i in np.argsort(area):
        x0, y0 = np.floor(np.maximum(box[i, :2], 0)).astype(int)
        x1, y1 = np.ceil(np.minimum(box[i, 2:], [d.width, d.height])).astype(int)
        if x1 <= x0 or y1 <= y0:
            keep[i] = False
            continue
        near = keep & (box[:, 0] < x1) & (box[:, 2] > x0) & (box[:, 1] < y1) & (box[:, 3] > y0)
        t = target[y0:y1, x0:x1]

        def local(mask, x0=x0, y0=y0, x1=x1, y1=y1):
            sub = Drawing(d.lines[mask[:n_l]], d.curves[mask[n_l:]], d.height, d.width)
            return render(sub.shifted(-x0, -y0, y1 - y0, x1 - x0))

        without = near.copy()
        without[i] = False
        if iou(local(without), t, None) >= iou(local(near), t, None) - 1e-3:
            keep[i] = False
    return Drawing(d.lines[keep[:n_l]], d.curves[keep[n_l:]], d.height, d.width)


def snap(d: Drawing, radius: float) -> Drawing:
    """Move end points (lines and curves) closer than ``radius`` px to their cluster's mean."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pts = np.concatenate([d.lines[:, 0:2], d.lines[:, 2:4], d.curves[:, 0:2], d.curves[:, 4:6]])
    if len(pts) < 2 or radius <= 0:
        return d
    n, m = len(d.lines), len(d.curves)
    length = np.concatenate(
        [np.hypot(*(d.lines[:, 2:4] - d.lines[:, 0:2]).T), np.hypot(*(d.curves[:, 4:6] - d.curves[:, 0:2]).T)]
    )
    owner = np.concatenate([np.arange(n), np.arange(n), n + np.arange(m), n + np.arange(m)])
    pairs = cKDTree(pts).query_pairs(radius, output_type="ndarray")
    # short strokes (under 3 radii) keep their ends: snapping would collapse them
    pairs = pairs[(length[owner[pairs[:, 0]]] >= 3 * radius) & (length[owner[pairs[:, 1]]] >= 3 * radius)]
    if not len(pairs):
        return d
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(pts), len(pts)))
    _, lab = connected_components(g, directed=False)
    sums = np.zeros((lab.max() + 1, 2))
    np.add.at(sums, lab, pts)
    pts = sums[lab] / np.bincount(lab)[lab, None]
    lines, curves = d.lines.copy(), d.curves.copy()
    lines[:, 0:2], lines[:, 2:4] = pts[:n], pts[n : 2 * n]
    curves[:, 0:2], curves[:, 4:6] = pts[2 * n : 2 * n + m], pts[2 * n + m :]
    keep = np.hypot(lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1]) > 1e-6
    return Drawing(lines[keep], curves, d.height, d.width)


def merge(d: Drawing, cfg: MergeConfig | None = None, target: np.ndarray | None = None) -> Drawing:
    """Merge a page's primitives (see the module doc); ``target`` (the page's ink) enables pruning."""
    cfg = cfg or MergeConfig()
    lines = merge_lines(d.lines, cfg.max_angle, cfg.max_distance)
    out = Drawing(lines, d.curves, d.height, d.width)
    if cfg.prune and target is not None and len(out):
        out = prune(out, target)
    return snap(out, cfg.snap)
