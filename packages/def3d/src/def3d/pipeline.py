"""Whole inputs: read a mesh or cloud of any size, patch it, predict, fuse, extract curves, write results.

Scale: a model is trained at resolution r on clouds whose median nearest-neighbour spacing is
``info["spacing"]``. A user's cloud is rescaled so that its median spacing matches; a mesh is
first sampled with about ``area / resolution^2`` points (``resolution`` in the mesh's units,
default: ``sqrt(area / 20000)``). Distances and curves are returned in the input's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from def3d.config import CurveConfig
from def3d.curves import Curves, extract_curves
from def3d.fusion import fuse_patches
from def3d.train import DEFModel, predict_batch

__all__ = ["Prediction", "cover_patches", "load_input", "predict_cloud", "write_prediction"]

INPUT_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".xyz", ".npy")


@dataclass
class Prediction:
    points: np.ndarray  # [N, 3], input units
    distances: np.ndarray  # [N], input units, clipped at upper * scale
    curves: Curves
    resolution: float  # r in input units
    mesh: tuple | None = None  # (vertices, faces) when the input was a mesh


def load_input(path, resolution: float | None = None, max_points: int = 200_000, seed: int = 0):
    """Points ``[N, 3]`` (float64), the resolution in input units, and ``(V, F)`` for a mesh."""
    from papercore.geometry.io import _has_faces, read_cloud, read_mesh, sample_mesh

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() not in INPUT_SUFFIXES:
        raise ValueError(f"{path}: unknown extension {path.suffix!r}; use one of {', '.join(INPUT_SUFFIXES)}")
    if path.stat().st_size == 0 or (
        path.suffix.lower() == ".xyz" and not path.read_text(errors="replace").strip()
    ):
        raise ValueError(f"{path}: empty file, no points or faces")
    if _has_faces(path):
        try:
            mesh = read_mesh(path)
        except ValueError:
            raise
        except Exception as e:  # open3d could not parse it
            raise ValueError(
                f"{path}: open3d cannot read this mesh ({e}); re-export it as PLY/OBJ/STL"
            ) from None
        if not np.isfinite(mesh.vertices).all():
            raise ValueError(f"{path}: NaN or inf vertex coordinates; repair the mesh first")
        area = mesh.area
        if not area > 0:
            raise ValueError(f"{path}: the mesh has zero surface area")
        r = resolution or math.sqrt(area / 20000)
        n = int(area / r**2)
        if n > max_points:
            raise ValueError(
                f"{path}: resolution {r:g} needs {n} samples (> {max_points}); pass a coarser --resolution (>= {math.sqrt(area / max_points):.4g})"
            )
        p = sample_mesh(mesh, n, "uniform", seed=seed).double().numpy()
        return p, r, (mesh.vertices, mesh.faces)
    try:
        p = read_cloud(path).double().numpy()
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: cannot read this cloud ({e})") from None
    if len(p) < 64:
        raise ValueError(
            f"{path}: only {len(p)} points; def3d needs at least 64 (a cloud, or a mesh with faces)"
        )
    spacing = _spacing(p)
    r_cloud = 2 * spacing  # uniform samples at resolution r have a median spacing of about r/2
    if resolution is not None and resolution < 0.5 * r_cloud:
        raise ValueError(f"{path}: the cloud is too sparse for --resolution {resolution:g} (median spacing {spacing:.4g}); "
                         f"it supports --resolution >= {0.5 * r_cloud:.4g}, or leave it out")  # fmt: skip
    return p, (resolution or r_cloud), None


def _spacing(p: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    sub = p[np.random.default_rng(0).choice(len(p), min(len(p), 5000), replace=False)]
    return float(np.median(cKDTree(p).query(sub, k=2)[0][:, 1]))


def cover_patches(points: np.ndarray, m: int, overlap: float = 2.0, seed: int = 0) -> np.ndarray:
    """Indices ``[P, m]`` of kNN patches whose union covers every point about ``overlap`` times."""
    from scipy.spatial import cKDTree

    n = len(points)
    m = min(m, n)
    tree = cKDTree(points)
    count = np.zeros(n, int)
    rng = np.random.default_rng(seed)
    patches = []
    order = rng.permutation(n)
    while True:
        under = order[count[order] < overlap]
        if not len(under) or (count.min() >= 1 and len(patches) * m >= overlap * n):
            break
        c = under[0]
        _, nb = tree.query(points[c], k=m)
        nb = np.atleast_1d(nb)
        patches.append(nb)
        count[nb] += 1
    return np.stack(patches)


def predict_cloud(model: DEFModel, points, resolution: float, *, combiner: str = "min", curves: CurveConfig | None = None,
                  batch: int = 8, spacing: float | None = None) -> Prediction:  # fmt: skip
    """Per-point distances and curves for a whole cloud ``[N, 3]`` sampled at ``resolution`` (input units)."""
    P = np.asarray(points, np.float64)
    dcfg = model.data_cfg
    # scale input units -> model units: match the spacing the model saw in training
    s_in = _spacing(P) if spacing is None else spacing
    scale = model.info.get("spacing", dcfg.resolution / 2) / s_in
    X = torch.from_numpy(P * scale).float()
    idx = cover_patches(P, dcfg.patch_points)
    preds = []
    for i in range(0, len(idx), batch):
        x = X[torch.from_numpy(idx[i : i + batch])]
        preds.append(predict_batch(model, x - x.mean(1, keepdim=True)))
    fused = fuse_patches(len(P), torch.from_numpy(idx), torch.cat(preds), combiner).numpy().astype(np.float64)
    dist = fused * dcfg.upper / scale
    r_in = dcfg.resolution / scale
    c = extract_curves(P, dist, r_in, curves)
    return Prediction(P, dist, c, r_in)


def write_prediction(pred: Prediction, out, upper: float, plot: bool = True) -> dict:
    """``distances.ply`` (scalar ``distance`` + colours), ``curves.obj``, ``curves.json``, ``preview.png``."""
    from papercore.io import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = pred.distances
    t = np.clip(d / max(upper, 1e-12), 0, 1)
    rgb = (np.stack([1 - t, 0.2 + 0.6 * t * (1 - t) * 4 / 4, t], 1) * 255).astype(np.uint8)
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(d)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float distance\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")  # fmt: skip
    rec = np.zeros(len(d), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("distance", "<f4"),
                                  ("red", "u1"), ("green", "u1"), ("blue", "u1")])  # fmt: skip
    rec["x"], rec["y"], rec["z"] = pred.points.T
    rec["distance"] = d
    rec["red"], rec["green"], rec["blue"] = rgb.T
    with atomic_path(out / "distances.ply") as tmp, open(tmp, "wb") as f:
        f.write(header.encode())
        f.write(rec.tobytes())
    pred.curves.to_obj(out / "curves.obj")
    pred.curves.to_json(out / "curves.json")
    files = {
        "distances": str(out / "distances.ply"),
        "curves_obj": str(out / "curves.obj"),
        "curves_json": str(out / "curves.json"),
    }
    if plot:
        files["preview"] = str(preview(pred, out / "preview.png", upper))
    return files


def preview(pred: Prediction, path, upper: float) -> Path:
    """Two views: the cloud coloured by distance, and the extracted curves and corners."""
    from papercore.plot import _plt, _save

    plt = _plt()
    fig = plt.figure(figsize=(9, 4.5))
    P = pred.points
    sub = np.random.default_rng(0).choice(len(P), min(len(P), 20000), replace=False)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax.scatter(*P[sub].T, c=np.clip(pred.distances[sub] / upper, 0, 1), cmap="viridis_r", s=0.5)
    ax.set_title("distance to sharp features")
    ax = fig.add_subplot(1, 2, 2, projection="3d")
    ax.scatter(*P[sub[:5000]].T, c="0.85", s=0.2)
    for pl in pred.curves.polylines:
        pl = np.asarray(pl)
        ax.plot(*pl.T, lw=1.5)
    if len(pred.curves.corners):
        ax.scatter(*np.asarray(pred.curves.corners).T, c="k", s=12)
    ax.set_title(f"{len(pred.curves.polylines)} curves, {len(pred.curves.corners)} corners")
    for a in fig.axes:
        a.set_axis_off()
    return _save(fig, path)
