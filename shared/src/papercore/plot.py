"""The figures packages write, as PNG files (matplotlib, ``pip install papercore[plot]``).

Every function takes plain arrays or tensors (any device), writes one PNG atomically and returns its
path; none shows a window (the Agg backend).

* :func:`curves`: metric curves from ``metrics.jsonl`` records (one panel per metric, train and val);
* :func:`samples_2d`: 2-D point clouds overlaid;
* :func:`map_2d`: a 2-D transport map, arrows from source points to their images, optional
  contours of a potential;
* :func:`pareto`: points of (cost, quality) with their Pareto front;
* :func:`point_clouds`: 3-D point clouds side by side;
* :func:`depth_maps` and :func:`images`: 2-D arrays as images in a grid.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> from papercore.plot import map_2d
>>> x = np.random.default_rng(0).normal(size=(200, 2))
>>> p = map_2d(pathlib.Path(tempfile.mkdtemp()) / "map.png", x, 2 * x + 1)
>>> p.suffix
'.png'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papercore.io import atomic_path

__all__ = ["curves", "depth_maps", "images", "map_2d", "pareto", "point_clouds", "samples_2d"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _save(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    plt = _plt()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def curves(
    records: Iterable[dict[str, Any]] | str | os.PathLike,
    path: str | os.PathLike,
    keys: Sequence[str] | None = None,
    *,
    x: str = "step",
    logy: bool | None = None,
    title: str = "",
) -> Path:
    """One panel per metric, against ``x``: train records as lines, validation records as markers.

    ``records`` are dicts such as those of ``metrics.jsonl`` (``{"step": 10, "split": "train",
    "loss": 0.3}``), or the path of such a file. ``logy=None`` uses a log scale for positive
    metrics spanning more than two decades.
    """
    if isinstance(records, str | os.PathLike):
        records = [json.loads(line) for line in Path(records).read_text().splitlines() if line.strip()]
    records = list(records)
    skip = {x, "split", "seconds"}
    if keys is None:
        keys = []
        for r in records:
            keys += [
                k for k, v in r.items() if k not in skip and k not in keys and isinstance(v, int | float)
            ]
    plt = _plt()
    rows, cols = _grid(max(1, len(keys)), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for split, style in (("train", "-"), ("val", "o-"), ("test", "s--")):
            pts = [
                (r[x], r[key]) for r in records if r.get("split", "train") == split and key in r and x in r
            ]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, label=split, ms=3)
        values = [r[key] for r in records if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
        use_log = (
            logy
            if logy is not None
            else (bool(values) and min(values) > 0 and max(values) / min(values) > 100)
        )
        if use_log:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.grid(alpha=0.3)
        if len({r.get("split", "train") for r in records if key in r}) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def samples_2d(
    path: str | os.PathLike,
    *clouds: Any,
    labels: Sequence[str] | None = None,
    title: str = "",
    max_points: int = 4000,
) -> Path:
    """Overlaid scatter plots of 2-D samples (the first two coordinates of each cloud)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, c in enumerate(clouds):
        c = _np(c)[:max_points]
        ax.scatter(c[:, 0], c[:, 1], s=3, alpha=0.5, label=labels[i] if labels else None)
    if labels:
        ax.legend(markerscale=4, fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def map_2d(
    path: str | os.PathLike,
    source: Any,
    image: Any,
    *,
    target: Any = None,
    potential: Callable[[np.ndarray], np.ndarray] | None = None,
    n_arrows: int = 64,
    title: str = "",
) -> Path:
    """A 2-D map ``x -> T(x)``: source points, their images, arrows for ``n_arrows`` of them.

    ``target`` (optional) adds samples of the target distribution; ``potential`` (a function of an
    ``[n, 2]`` array returning ``[n]``) adds its contours, e.g. a Brenier potential ψ with T = ∇ψ.
    """
    plt = _plt()
    x, y = _np(source), _np(image)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"source and image must both be [n, 2] arrays, got {x.shape} and {y.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    pts = [x, y] + ([_np(target)] if target is not None else [])
    allp = np.concatenate([p[:, :2] for p in pts])
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.05 * (hi - lo + 1e-9)
    if potential is not None:
        gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 80),
                             np.linspace(lo[1] - pad[1], hi[1] + pad[1], 80))  # fmt: skip
        z = np.asarray(potential(np.stack([gx.ravel(), gy.ravel()], 1)), dtype=np.float64).reshape(gx.shape)
        ax.contour(gx, gy, z, levels=15, linewidths=0.6, cmap="Greys", alpha=0.7)
    if target is not None:
        t = _np(target)
        ax.scatter(t[:, 0], t[:, 1], s=3, alpha=0.3, c="tab:green", label="target")
    ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.4, c="tab:blue", label="source")
    ax.scatter(y[:, 0], y[:, 1], s=3, alpha=0.4, c="tab:red", label="mapped")
    idx = np.linspace(0, len(x) - 1, min(n_arrows, len(x))).astype(int)
    d = y[idx, :2] - x[idx, :2]
    ax.quiver(x[idx, 0], x[idx, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1,
              width=0.003, color="k", alpha=0.6)  # fmt: skip
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=4, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def pareto(
    path: str | os.PathLike,
    points: Sequence[tuple[float, float, str]],
    *,
    xlabel: str = "cost",
    ylabel: str = "quality",
    minimize_x: bool = True,
    maximize_y: bool = True,
    title: str = "",
) -> Path:
    """Labelled points ``(x, y, label)``; the non-dominated ones are joined as the Pareto front."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    groups: dict[str, list[tuple[float, float]]] = {}
    for px, py, label in points:
        groups.setdefault(label, []).append((px, py))
    for label, pts in groups.items():
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=18, label=label)
    sx = 1 if minimize_x else -1
    sy = -1 if maximize_y else 1
    front = []
    for px, py, _ in sorted(points, key=lambda p: (sx * p[0], sy * p[1])):
        if not front or sy * py < sy * front[-1][1]:
            front.append((px, py))
    if len(front) > 1:
        fx, fy = zip(*front)
        ax.plot(fx, fy, "k--", lw=0.8, alpha=0.7, label="Pareto front")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def point_clouds(
    path: str | os.PathLike,
    clouds: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    colors: Sequence[Any] | None = None,
    max_points: int = 4096,
    elev: float = 20,
    azim: float = -60,
) -> Path:
    """3-D point clouds ``[n, 3]`` side by side, on equal axes; ``colors`` are per-point scalars."""
    plt = _plt()
    rows, cols = _grid(len(clouds))
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for i, c in enumerate(clouds):
        p = _np(c)[:max_points]
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        col = _np(colors[i])[:max_points] if colors is not None and colors[i] is not None else p[:, 2]
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=1.5, c=col, cmap="viridis")
        r = np.abs(p).max() if len(p) else 1.0
        ax.set_xlim(-r, r)
        ax.set_ylim(-r, r)
        ax.set_zlim(-r, r)
        ax.view_init(elev=elev, azim=azim)
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize=9)
    return _save(fig, path)


def images(
    path: str | os.PathLike,
    arrays: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = False,
) -> Path:
    """2-D arrays (or ``[H, W, 3]`` colour images in [0, 1]) in a grid."""
    plt = _plt()
    rows, cols = _grid(len(arrays))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for i, a in enumerate(arrays):
        ax = axes.flat[i]
        img = _np(a)
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.transpose(1, 2, 0)
        img = img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img
        shown = ax.imshow(np.clip(img, 0, 1) if img.ndim == 3 else img, cmap=cmap, vmin=vmin, vmax=vmax)
        if colorbar and img.ndim == 2:
            fig.colorbar(shown, ax=ax, fraction=0.046)
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize=9)
    for ax in list(axes.flat)[len(arrays) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def depth_maps(path: str | os.PathLike, maps: Sequence[Any], titles: Sequence[str] | None = None) -> Path:
    """Depth maps on one shared colour scale (invalid pixels, NaN or 0, shown blank)."""
    arrays = []
    for m in maps:
        a = _np(m).squeeze()
        arrays.append(np.where(np.isfinite(a) & (a > 0), a, np.nan))
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([0.0])
    lo, hi = (np.percentile(finite, 1), np.percentile(finite, 99)) if finite.size else (0, 1)
    return images(path, arrays, titles, cmap="turbo", vmin=lo, vmax=hi, colorbar=True)
