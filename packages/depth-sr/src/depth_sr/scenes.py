r"""Training and test data with exact ground truth: ray-cast synthetic scenes, meshes, LR inputs.

A synthetic scene is a slanted back wall, an optional slanted floor and a few analytic solids of
:mod:`papercore.geometry` (spheres, boxes, cylinders, cones, tori, extruded polygons, tables, mugs)
under random rotations and anisotropic scales, occluding each other. Rays through the pixel centres
of a pinhole camera at the origin (directions :math:`((u + \tfrac12 - c_x)/f_x, (v + \tfrac12 - c_y)/f_y, 1)`,
so the ray parameter *is* the z-depth) are cast in float64 torch on the CPU or a GPU; the first hit
gives the exact depth and the exact surface normal.

The RGB guidance is Lambertian shading of the true normals times an albedo that is a per-object
colour times an image-space texture (stripes, checkers, blobs) that is deliberately *not* aligned
with the geometry: a method that copies texture edges into depth is penalised.

LR inputs are area (box) averages of the HR depth over ``scale x scale`` blocks (invalid pixels
left out), with optional Gaussian noise of std ``noise`` times the depth range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depth_sr.camera import Intrinsics, valid_mask

__all__ = [
    "Scene",
    "area_downsample",
    "make_lr",
    "mesh_scene",
    "rgb_guidance",
    "synthetic_scene",
    "synthetic_scenes",
]

OBJECTS = ("sphere", "box", "cylinder", "cone", "torus", "extrusion", "table", "mug")


@dataclass
class Scene:
    """One view: HR ``depth [H, W]`` (0 where nothing was hit), exact ``normals [H, W, 3]``, ``rgb [3, H, W]``
    in [0, 1] and the camera ``K``."""

    depth: torch.Tensor
    normals: torch.Tensor
    rgb: torch.Tensor
    K: Intrinsics


def _u(g, lo, hi) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def pixel_rays(height: int, width: int, K: Intrinsics, device=None) -> torch.Tensor:
    """Ray directions ``[H * W, 3]`` (z = 1) through the pixel centres, row-major."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=device) + 0.5,
                          torch.arange(width, dtype=torch.float64, device=device) + 0.5, indexing="ij")  # fmt: skip
    d = torch.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, torch.ones_like(u)], -1)
    return d.reshape(-1, 3)


def _parts(g: torch.Generator, n_objects: int) -> list:
    from papercore.geometry import Box, random_rotation, random_shape, rotation_about

    parts = []
    # a slanted back wall, far away, larger than the view
    tilt = rotation_about(torch.tensor([1.0, 0, 0], dtype=torch.float64), _u(g, -0.5, 0.5)) @ rotation_about(
        torch.tensor([0, 1.0, 0], dtype=torch.float64), _u(g, -0.6, 0.6)
    )
    parts.append(Box((40.0, 40.0, 0.5)).transformed(rotation=tilt, translation=[0, 0, _u(g, 6.0, 9.0)]))
    if _u(g, 0, 1) < 0.6:  # a floor below the camera, seen at a grazing angle, from z = 1 to 12
        floor = rotation_about(
            torch.tensor([1.0, 0, 0], dtype=torch.float64), math.pi / 2 + _u(g, -0.15, 0.15)
        )
        parts.append(
            Box((40.0, 11.0, 0.3)).transformed(rotation=floor, translation=[0, _u(g, 1.2, 2.0), 6.5])
        )
    for _ in range(n_objects):
        name = OBJECTS[int(torch.randint(len(OBJECTS), (1,), generator=g))]
        shape = random_shape(name, g, scale=(0.5, 1.5), rotation=None)
        z = _u(g, 2.2, 5.5)
        size = _u(g, 0.5, 1.6) * z / 4.0
        R = random_rotation(g, "so3")
        x, y = _u(g, -0.45, 0.45) * z, _u(g, -0.45, 0.45) * z
        parts.append(shape.transformed(rotation=R, scale=size, translation=[x, y, z]))
    return parts


def _texture(g: torch.Generator, height: int, width: int, device) -> torch.Tensor:
    """An image-space albedo texture in [0.25, 1], unrelated to the geometry."""
    v, u = torch.meshgrid(torch.linspace(0, 1, height, device=device), torch.linspace(0, 1, width, device=device),
                          indexing="ij")  # fmt: skip
    tex = torch.ones(height, width, device=device)
    for _ in range(int(torch.randint(2, 5, (1,), generator=g))):
        kind = int(torch.randint(3, (1,), generator=g))
        a, f, ph = _u(g, 0, math.pi), _u(g, 3, 14), _u(g, 0, 2 * math.pi)
        s = u * math.cos(a) + v * math.sin(a)
        if kind == 0:  # stripes
            layer = (torch.sin(2 * math.pi * f * s + ph) > 0).float()
        elif kind == 1:  # checkers
            t = -u * math.sin(a) + v * math.cos(a)
            layer = ((torch.floor(f * s + ph) + torch.floor(f * t)) % 2).float()
        else:  # a soft blob
            cx, cy, r = _u(g, 0, 1), _u(g, 0, 1), _u(g, 0.08, 0.3)
            layer = (((u - cx) ** 2 + (v - cy) ** 2) < r * r).float()
        tex = tex * (1 - _u(g, 0.2, 0.5) * layer)
    return tex.clamp(0.25, 1)


def rgb_guidance(
    normals: torch.Tensor, labels: torch.Tensor, g: torch.Generator, texture: bool = True
) -> torch.Tensor:
    """RGB ``[3, H, W]``: shading of ``normals`` under a random light, ambient 0.25, per-label colour
    times an unaligned texture."""
    H, W = labels.shape
    dev = normals.device
    light = torch.tensor([_u(g, -0.6, 0.6), _u(g, -0.8, -0.2), -1.0], device=dev)
    light = light / light.norm()
    shade = 0.25 + 0.75 * (normals.float() @ light).clamp_min(0)
    n_labels = int(labels.max()) + 2
    colours = 0.45 + 0.55 * torch.rand(n_labels, 3, generator=g).to(dev)
    albedo = colours[labels.clamp_min(0)].permute(2, 0, 1)  # [3, H, W]
    if texture:
        albedo = albedo * _texture(g, H, W, dev)
    return (albedo * shade).clamp(0, 1)


def synthetic_scene(
    seed: int, size: int | tuple[int, int] = 128, *, n_objects: tuple[int, int] = (2, 6), fov: float = 60.0,
    texture: bool = True, device=None,
) -> Scene:  # fmt: skip
    """Scene ``seed`` (the same on every machine) at ``size`` (H = W, or ``(H, W)``) pixels."""
    H, W = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    K = Intrinsics.default(H, W, fov)
    parts = _parts(g, int(torch.randint(n_objects[0], n_objects[1] + 1, (1,), generator=g)))
    d = pixel_rays(H, W, K, device)
    o = torch.zeros_like(d)
    t = torch.full((H * W,), math.inf, dtype=torch.float64, device=d.device)
    nrm = torch.zeros(H * W, 3, dtype=torch.float64, device=d.device)
    label = torch.full((H * W,), -1, dtype=torch.long, device=d.device)
    for i, part in enumerate(parts):
        hit = part.intersect(o, d)
        closer = hit.t < t
        t = torch.where(closer, hit.t, t)
        nrm = torch.where(closer[:, None], hit.normals, nrm)
        label = torch.where(closer, i, label)
    ok = torch.isfinite(t)
    nrm = torch.where((nrm * d).sum(1, keepdim=True) > 0, -nrm, nrm)  # towards the camera
    depth = torch.where(ok, t, 0).reshape(H, W).float()
    normals = nrm.reshape(H, W, 3).float()
    rgb = rgb_guidance(normals, label.reshape(H, W), g, texture)
    return Scene(depth, normals, rgb, K)


def synthetic_scenes(count: int, seed: int = 0, size: int = 128, **kwargs) -> list[Scene]:
    """``count`` scenes; scene ``i`` depends on ``(seed, i)`` only."""
    return [synthetic_scene(seed * 1_000_003 + i, size, **kwargs) for i in range(count)]


def mesh_scene(
    mesh, size: int | tuple[int, int] = 128, *, distance: float = 2.5, fov: float = 60.0, seed: int = 0,
    texture: bool = True,
) -> Scene:  # fmt: skip
    """A view of a mesh (a path or a :class:`papercore.geometry.io.Mesh`) ray-cast through open3d.

    The mesh is normalised into the unit ball, given a random rotation and placed ``distance``
    units in front of the camera, before a wall behind it. Needs open3d (``papercore[geometry]``).
    """
    import numpy as np

    from papercore.geometry import random_rotation
    from papercore.geometry.io import Mesh, raycast, read_mesh

    m = read_mesh(mesh) if not isinstance(mesh, Mesh) else mesh
    H, W = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(int(seed))
    v = m.vertices - m.vertices.mean(0)
    v = v / np.linalg.norm(v, axis=1).max()
    R = random_rotation(g, "so3").numpy()
    v = v @ R.T + np.array([0.0, 0.0, distance])
    wall = np.array(
        [
            [-50, -50, distance + 2],
            [50, -50, distance + 2.5],
            [50, 50, distance + 2.5],
            [-50, 50, distance + 2],
        ]
    )
    verts = np.vstack([v, wall])
    faces = np.vstack([m.faces, np.array([[0, 1, 2], [0, 2, 3]]) + len(v)])
    K = Intrinsics.default(H, W, fov)
    d = pixel_rays(H, W, K)
    t, nrm, hit = raycast(Mesh(verts, faces), torch.zeros_like(d), d)
    nrm = torch.where((nrm * d).sum(1, keepdim=True) > 0, -nrm, nrm)
    on_mesh = torch.where(hit, 0, -1).reshape(H, W)
    depth = torch.where(hit, t, 0).reshape(H, W).float()
    normals = torch.where(hit[:, None], nrm, 0).reshape(H, W, 3).float()
    return Scene(depth, normals, rgb_guidance(normals, on_mesh + 1, g, texture), K)


def area_downsample(depth: torch.Tensor, scale: int) -> torch.Tensor:
    """Mean of the valid pixels of each ``scale x scale`` block (0 where none is valid); ``[..., H, W]``."""
    H, W = depth.shape[-2:]
    if H % scale or W % scale:
        raise ValueError(
            f"a {H}x{W} depth map cannot be area-downsampled by {scale}: sizes must be multiples"
        )
    valid = valid_mask(depth)
    d = torch.where(valid, depth, 0).reshape(-1, 1, H, W)
    w = valid.to(d.dtype).reshape(-1, 1, H, W)
    s = F.avg_pool2d(d, scale)
    c = F.avg_pool2d(w, scale)
    out = torch.where(c > 0, s / c.clamp_min(1e-12), 0)
    return out.reshape(*depth.shape[:-2], H // scale, W // scale)


def make_lr(depth: torch.Tensor, scale: int, noise: float = 0.0, generator: torch.Generator | None = None):
    """LR depth: area downsampling, then Gaussian noise of std ``noise x (max - min)`` on valid pixels."""
    lr = area_downsample(depth, scale)
    if noise > 0:
        valid = valid_mask(lr)
        flat = torch.where(valid, lr, torch.nan).flatten(-2)
        rng = (flat.nan_to_num(-math.inf).amax(-1) - flat.nan_to_num(math.inf).amin(-1))[..., None, None]
        dev = generator.device if generator is not None else lr.device
        eps = torch.randn(lr.shape, generator=generator, dtype=lr.dtype, device=dev).to(lr.device)
        lr = torch.where(valid, (lr + noise * rng * eps).clamp_min(1e-6), 0)
    return lr
