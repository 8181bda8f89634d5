r"""Training data with exact ground truth: point patches and orthographic range images of
:mod:`def3d.cad` shapes, generated from a seed on the CPU and cached.

Every shape is first rescaled by DEF's convention (:func:`def3d.annotate.def_scale`: the 25%
quantile of curve lengths becomes 1, the distance upper bound), then sampled at resolution
:math:`r`: about :math:`A / r^2` points on a surface of area :math:`A`.

* **Point patches**: the ``N`` samples nearest to a random surface sample, centred, with isotropic
  Gaussian noise :math:`\sigma = s\,r`. Sampling is uniform by area, or blue noise (``"blue"``:
  farthest-point subsampling of a 4x denser uniform sample, a Poisson-disk-like set).
* **Range images**: ``H x W`` orthographic rays at pixel pitch :math:`r` along a random direction,
  aimed at a random surface point; noise along the view axis. Background pixels get the upper bound.

Targets are normalised: ``distances = d / upper`` lies in ``[0, 1]``.
"""

from __future__ import annotations

import hashlib
import json
import math

import torch

from def3d.annotate import annotate, def_scale
from def3d.cad import FAMILIES, CADShape, random_cad
from def3d.config import DataConfig

__all__ = [
    "farthest_point_sampling",
    "make_images",
    "make_patches",
    "render_view",
    "scaled_shape",
    "shape_cloud",
    "load_or_make",
]


def scaled_shape(family: str, seed: int) -> CADShape:
    shape = random_cad(family, seed)
    return shape.transformed(scale=def_scale(shape))


def farthest_point_sampling(points: torch.Tensor, m: int, start: int = 0) -> torch.Tensor:
    """Indices of ``m`` points chosen greedily, each farthest from those already chosen."""
    n = len(points)
    m = min(m, n)
    idx = torch.empty(m, dtype=torch.long)
    dist = torch.full((n,), math.inf, dtype=points.dtype)
    cur = start
    for i in range(m):
        idx[i] = cur
        dist = torch.minimum(dist, (points - points[cur]).pow(2).sum(1))
        cur = int(dist.argmax())
    return idx


def shape_cloud(shape: CADShape, cfg: DataConfig, g: torch.Generator, min_points: int = 0):
    """Surface samples of a whole shape at resolution ``r``: points, normals, patch ids, distances (/ upper)."""
    n = max(int(shape.area / cfg.resolution**2), min_points)
    if cfg.sampling == "blue":
        p, nrm, lab = shape.sample(4 * n, g)
        keep = farthest_point_sampling(p, n, int(torch.randint(4 * n, (1,), generator=g)))
        p, nrm, lab = p[keep], nrm[keep], lab[keep]
    else:
        p, nrm, lab = shape.sample(n, g)
    d = annotate(p, lab, shape, rule=cfg.rule, upper=cfg.upper) / cfg.upper
    return p, nrm, lab, d


def _noise_levels(cfg: DataConfig) -> list[float]:
    return [float(s) for s in cfg.noise.split(",")]


def make_patches(cfg: DataConfig, count: int, seed: int, families=FAMILIES) -> dict[str, torch.Tensor]:
    """``count`` point patches from shapes of seeds ``seed, seed+1, ...`` (several patches per shape).

    Returns ``points [P, N, 3]`` (float32, centred, noisy), ``distances [P, N]`` (in [0, 1]),
    ``sigma [P]`` (noise in units of r), ``shape [P]`` (the shape seed).
    """
    from scipy.spatial import cKDTree

    N, levels = cfg.patch_points, _noise_levels(cfg)
    per_shape = max(1, cfg.patches_per_shape)
    out = {"points": [], "distances": [], "sigma": [], "shape": []}
    s = seed
    while len(out["points"]) < count:
        g = torch.Generator().manual_seed(s)
        shape = scaled_shape(families[s % len(families)], s)
        p, _, _, d = shape_cloud(shape, cfg, g, min_points=N)
        tree = cKDTree(p.numpy())
        for _ in range(min(per_shape, count - len(out["points"]))):
            c = int(torch.randint(len(p), (1,), generator=g))
            _, nb = tree.query(p[c].numpy(), k=N)
            q = p[nb] - p[nb].mean(0)
            sig = levels[int(torch.randint(len(levels), (1,), generator=g))]
            q = q + sig * cfg.resolution * torch.randn(q.shape, generator=g, dtype=q.dtype)
            out["points"].append(q.float())
            out["distances"].append(d[nb].float())
            out["sigma"].append(sig)
            out["shape"].append(s)
        s += 1
    return {
        "points": torch.stack(out["points"]),
        "distances": torch.stack(out["distances"]),
        "sigma": torch.tensor(out["sigma"], dtype=torch.float32),
        "shape": torch.tensor(out["shape"]),
    }


def _frame(direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = direction / direction.norm()
    helper = (
        torch.tensor([1.0, 0, 0], dtype=z.dtype)
        if abs(float(z[0])) < 0.9
        else torch.tensor([0, 1.0, 0], dtype=z.dtype)
    )
    x = torch.linalg.cross(helper, z)
    x = x / x.norm()
    return x, torch.linalg.cross(z, x), z


def render_view(shape: CADShape, direction, center, size: int, pitch: float, cfg: DataConfig | None = None):
    """An orthographic range image: rays along ``direction`` through a ``size x size`` grid of pitch ``pitch``
    centred on ``center``.

    Returns a dict: ``depth [H, W]`` (ray parameter from the image plane, NaN on background),
    ``mask``, ``points [H, W, 3]``, ``surface [H, W]``, ``frame`` (``[3, 3]`` rows x, y, view axis),
    ``origin`` (the image plane's centre), and, with ``cfg``, ``distances [H, W]`` (background: 1).
    """
    d = torch.as_tensor(direction, dtype=torch.float64)
    c = torch.as_tensor(center, dtype=torch.float64)
    ex, ey, ez = _frame(d)
    far = 1e3
    ii = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) * pitch
    v, u = torch.meshgrid(ii, ii, indexing="ij")
    origin = c - far * ez
    o = origin + u.reshape(-1, 1) * ex + v.reshape(-1, 1) * ey
    t, pts, _, lab = shape.intersect(o, ez.expand_as(o))
    hit = torch.isfinite(t)
    out = {
        "depth": torch.where(hit, t, torch.full_like(t, math.nan)).reshape(size, size),
        "mask": hit.reshape(size, size),
        "points": pts.reshape(size, size, 3),
        "surface": lab.reshape(size, size),
        "frame": torch.stack([ex, ey, ez]),
        "origin": origin,
        "pitch": pitch,
    }
    if cfg is not None:
        dist = torch.ones(size * size, dtype=torch.float64)
        if hit.any():
            dist[hit] = annotate(pts[hit], lab[hit], shape, rule=cfg.rule, upper=cfg.upper) / cfg.upper
        out["distances"] = dist.reshape(size, size)
    return out


def depth_input(depth: torch.Tensor, pitch: float) -> torch.Tensor:
    """Network input ``[2, H, W]`` from a range image: depth minus its foreground minimum, in units of
    ``pitch * H`` (DEF's fixed normaliser), 0 on background; and the foreground mask."""
    mask = torch.isfinite(depth)
    z = torch.where(mask, depth, torch.zeros_like(depth))
    if mask.any():
        z = torch.where(mask, z - depth[mask].min(), z)
    return torch.stack([z / (pitch * depth.shape[-1]), mask.to(z.dtype)]).float()


def make_images(cfg: DataConfig, count: int, seed: int, families=FAMILIES) -> dict[str, torch.Tensor]:
    """``count`` range images ``inputs [P, 2, H, W]``, ``distances [P, H, W]``, ``mask``, ``sigma``, ``shape``."""
    H, levels = cfg.image_size, _noise_levels(cfg)
    out = {"inputs": [], "distances": [], "mask": [], "sigma": [], "shape": []}
    s = seed
    while len(out["inputs"]) < count:
        g = torch.Generator().manual_seed(s)
        shape = scaled_shape(families[s % len(families)], s)
        p, _, _ = shape.sample(256, g)
        for _ in range(min(cfg.patches_per_shape, count - len(out["inputs"]))):
            c = p[int(torch.randint(len(p), (1,), generator=g))]
            direction = torch.randn(3, generator=g, dtype=torch.float64)
            view = render_view(shape, direction, c, H, cfg.resolution, cfg)
            if view["mask"].float().mean() < 0.2:
                continue
            sig = levels[int(torch.randint(len(levels), (1,), generator=g))]
            depth = view["depth"] + sig * cfg.resolution * torch.randn(H, H, generator=g, dtype=torch.float64)
            out["inputs"].append(depth_input(depth, cfg.resolution))
            out["distances"].append(view["distances"].float())
            out["mask"].append(view["mask"])
            out["sigma"].append(sig)
            out["shape"].append(s)
        s += 1
    return {
        k: torch.stack(v) if k in ("inputs", "distances", "mask") else torch.tensor(v) for k, v in out.items()
    }


def load_or_make(kind: str, cfg: DataConfig, count: int, seed: int) -> dict[str, torch.Tensor]:
    """:func:`make_patches` or :func:`make_images`, cached under ``$PAPERCORE_CACHE/def3d/data`` by a hash of the arguments."""
    from papercore.io import cache_dir, load_tensors, save_tensors

    key = json.dumps(
        {"kind": kind, "cfg": cfg.to_dict(), "count": count, "seed": seed, "v": 1}, sort_keys=True
    )
    path = cache_dir("def3d", "data") / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
    if path.exists():
        try:
            return load_tensors(path)
        except Exception:  # a damaged entry is rebuilt
            path.unlink()
    data = (make_patches if kind == "points" else make_images)(cfg, count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(path, data)
    return data
