"""Synthetic technical drawings with exact ground truth, and scan-like degradations.

A drawing is built from a seeded generator: long lines, junctions (a stroke starting on another's
end), T-crossings (ending on another's interior), parallel near-duplicates, arcs (quadratic
Béziers), dashed lines (each dash a line of the truth) and text-like clutter (short strokes in
glyph-sized boxes). Widths are 1-6 px. The clean raster is our own rasteriser's render; the input
image is ``1 - degrade(ink)`` (white paper, dark ink).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vectorize.drawing import Drawing
from vectorize.raster import render


def _width(rng, wmax: float = 6.0) -> float:
    return float(rng.choice([1.0, 1.5, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0]) if wmax >= 6 else rng.uniform(1, wmax))


def _seg(rng, H, W, lmin, lmax):
    p = rng.uniform([0, 0], [W, H])
    a = rng.uniform(0, np.pi)
    if rng.random() < 0.5:  # technical drawings: mostly axis-aligned
        a = rng.choice([0, np.pi / 2])
    L = rng.uniform(lmin, lmax)
    q = p + L * np.array([np.cos(a), np.sin(a)])
    return np.clip(np.concatenate([p, q]), 0, [W, H, W, H])


def drawing(rng: np.random.Generator, height: int = 64, width: int = 64, n: int | None = None,
            clutter: bool = True, curves: bool = True) -> Drawing:  # fmt: skip
    """A random drawing of ``n`` primitives (default: 1-10 on a patch, ~ area / 4000 on a page)."""
    H, W = height, width
    scale = min(H, W)
    n = (
        n
        if n is not None
        else int(rng.integers(1, 11) if scale <= 64 else rng.integers(H * W // 6000, H * W // 3000))
    )
    lines, arcs = [], []
    lmin, lmax = max(4.0, scale * 0.15), scale * (0.9 if scale <= 64 else 0.35)
    while len(lines) + len(arcs) < n:
        kind = rng.choice(["line", "junction", "tee", "parallel", "arc", "dash", "text"],
                          p=[0.3, 0.15, 0.12, 0.1, 0.18 if curves else 0, 0.08, 0.07 if clutter else 0] / np.array(
                              [1.0 - (0 if curves else 0.18) - (0 if clutter else 0.07)]))  # fmt: skip
        w = _width(rng)
        if kind == "line" or (kind in ("junction", "tee", "parallel") and not lines):
            lines.append([*_seg(rng, H, W, lmin, lmax), w])
        elif kind == "junction":
            base = lines[rng.integers(len(lines))]
            p = np.array(base[:2] if rng.random() < 0.5 else base[2:4])
            a = np.arctan2(base[3] - base[1], base[2] - base[0]) + rng.choice(
                [np.pi / 2, -np.pi / 2, rng.uniform(0.4, 2.7)]
            )
            q = np.clip(p + rng.uniform(lmin, lmax) * np.array([np.cos(a), np.sin(a)]), 0, [W, H])
            lines.append([*p, *q, w])
        elif kind == "tee":
            base = np.array(lines[rng.integers(len(lines))][:4])
            p = base[:2] + rng.uniform(0.25, 0.75) * (base[2:] - base[:2])
            a = np.arctan2(base[3] - base[1], base[2] - base[0]) + np.pi / 2 * rng.choice([1, -1])
            q = np.clip(p + rng.uniform(lmin, lmax) * np.array([np.cos(a), np.sin(a)]), 0, [W, H])
            lines.append([*q, *p, w])
        elif kind == "parallel":
            base = np.array(lines[rng.integers(len(lines))])
            e = base[2:4] - base[:2]
            nrm = np.array([-e[1], e[0]]) / max(np.linalg.norm(e), 1e-6)
            off = nrm * (base[4] / 2 + w / 2 + rng.uniform(1.5, 4)) * rng.choice([1, -1])
            lines.append([*np.clip(base[:2] + off, 0, [W, H]), *np.clip(base[2:4] + off, 0, [W, H]), w])
        elif kind == "arc":
            p0, p2 = _seg(rng, H, W, lmin, lmax).reshape(2, 2)
            mid, e = (p0 + p2) / 2, p2 - p0
            nrm = np.array([-e[1], e[0]])
            p1 = np.clip(mid + nrm * rng.uniform(-0.6, 0.6), 0, [W, H])
            arcs.append([*p0, *p1, *p2, w])
        elif kind == "dash":
            x = _seg(rng, H, W, lmin * 2, lmax * 1.2)
            e = x[2:] - x[:2]
            L = np.linalg.norm(e)
            on, off = rng.uniform(4, 8), rng.uniform(3, 5)
            w = min(w, 3.0)
            for t in np.arange(0, L - on, on + off):
                if len(lines) + len(arcs) >= n:
                    break
                lines.append([*(x[:2] + e * t / L), *(x[:2] + e * (t + on) / L), w])
        else:  # a glyph: 2-3 short strokes in a ~6 x 9 box
            o = rng.uniform([0, 0], [W - 7, H - 10])
            for _ in range(int(rng.integers(2, 4))):
                if len(lines) + len(arcs) >= n:
                    break
                a, b = o + rng.uniform([0, 0], [6, 9], size=(2, 2))
                if np.linalg.norm(b - a) > 2:
                    lines.append([*a, *b, rng.choice([1.0, 1.5])])
    lines = [x for x in lines if np.hypot(x[2] - x[0], x[3] - x[1]) > 1.5]
    return Drawing(np.array(lines).reshape(-1, 5), np.array(arcs).reshape(-1, 7), H, W)


def degrade(ink: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A scan-like version of a clean ink map: gaps, Kanungo edge flips, blur, background texture,
    noise (each drawn at random; ``strength`` scales them, 0: none). Returns ink in [0, 1]."""
    if strength <= 0:
        return ink.copy()
    x = ink.astype(np.float64).copy()
    H, W = x.shape
    if rng.random() < 0.5:  # gaps: erase small discs on the strokes
        ys, xs = np.nonzero(x > 0.5)
        if len(ys):
            for i in rng.choice(
                len(ys), size=min(len(ys), int(rng.integers(1, 2 + H * W // 2000))), replace=False
            ):
                r = rng.uniform(1, 2.5)
                yy, xx = np.ogrid[:H, :W]
                x[(yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r] = 0
    if rng.random() < 0.5:  # Kanungo: flip pixels with probability a0 * exp(-a d^2) of their edge distance
        m = x > 0.5
        d = np.where(m, ndimage.distance_transform_edt(m), ndimage.distance_transform_edt(~m))
        flip = rng.random(x.shape) < 0.5 * strength * np.exp(-1.5 * d**2)
        x = np.where(flip, 1 - (x > 0.5), x)
    if rng.random() < 0.7:
        x = ndimage.gaussian_filter(x, rng.uniform(0.3, 1.0) * strength)
    if rng.random() < 0.6:  # background texture: low-frequency stains plus grain
        stain = ndimage.gaussian_filter(rng.normal(size=(H, W)), rng.uniform(4, 12))
        stain = (stain - stain.min()) / (np.ptp(stain) + 1e-9)
        x = x + 0.15 * strength * stain
    x = x + rng.normal(0, rng.uniform(0.0, 0.08) * strength, x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def sample(rng: np.random.Generator, height: int = 64, width: int = 64, degrade_p: float = 0.7, **kw):
    """``(image, clean_ink, drawing)``: the paper-and-ink image in [0, 1] (1 = white), the clean
    ink map and the exact truth."""
    d = drawing(rng, height, width, **kw)
    ink = render(d)
    dirty = degrade(ink, rng) if rng.random() < degrade_p else ink
    return 1 - dirty, ink, d


def pages(n: int, seed: int, size: int = 256, degrade_p: float = 0.0, **kw):
    """``n`` seeded pages ``[(image, clean_ink, drawing)]`` (the benchmark's test pages)."""
    rng = np.random.default_rng(seed)
    return [sample(rng, size, size, degrade_p=degrade_p, **kw) for _ in range(n)]
