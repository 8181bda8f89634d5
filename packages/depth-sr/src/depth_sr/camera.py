r"""Depth maps as surfaces: intrinsics, depth kinds, lifting to camera space, normals and masks.

A depth map ``d`` of shape ``[..., H, W]`` is read with pixel centres at :math:`(u + 1/2, v + 1/2)`
(``u`` the column, ``v`` the row) in a camera with x right, y down and z forward. Three kinds:

* ``"perspective"``: ``d`` is the z-depth of a pinhole camera with intrinsics :math:`f_x, f_y, c_x, c_y`,
  :math:`X = d\,\big((u + \tfrac12 - c_x)/f_x,\ (v + \tfrac12 - c_y)/f_y,\ 1\big)`;
* ``"orthographic"``: rays are parallel, :math:`f_x, f_y` are pixels per unit length,
  :math:`X = \big((u + \tfrac12 - c_x)/f_x,\ (v + \tfrac12 - c_y)/f_y,\ d\big)`;
* ``"disparity"``: ``d`` is the disparity in pixels of a rectified stereo pair with baseline ``b``,
  the z-depth is :math:`z = f_x b / d`, then lifted as perspective.

Normals by first-order forward differences,

.. math:: n(u, v) = \frac{\partial_v X \times \partial_u X}{\|\partial_v X \times \partial_u X\|},\qquad
          \partial_u X = X(u + 1, v) - X(u, v),

with the last row and column replicated; for a surface seen from the camera they point towards it
(:math:`n_z < 0`). A normal is valid where its three depth samples are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "DepthKind",
    "Intrinsics",
    "depth_to_disparity",
    "discontinuities",
    "disparity_to_depth",
    "normals",
    "normals_from_points",
    "points",
    "to_z_depth",
    "valid_mask",
]

DepthKind = Literal["perspective", "orthographic", "disparity"]
KINDS = ("perspective", "orthographic", "disparity")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (``fx, fy, cx, cy``) and a stereo baseline (for disparity maps)."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float = 1.0

    def __post_init__(self):
        vals = (self.fx, self.fy, self.cx, self.cy, self.baseline)
        if not all(isinstance(v, int | float) and v == v and abs(v) != float("inf") for v in vals):
            raise ValueError(f"intrinsics must be finite numbers, got {vals}")
        if self.fx <= 0 or self.fy <= 0 or self.baseline <= 0:
            raise ValueError(
                f"fx, fy and the baseline must be > 0, got {self.fx}, {self.fy}, {self.baseline}"
            )

    @classmethod
    def parse(cls, text: str, baseline: float = 1.0) -> Intrinsics:
        """``"fx,fy,cx,cy"`` (pixels), as the CLI's ``--intrinsics`` takes them."""
        parts = [p for p in str(text).replace(" ", ",").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(
                f"--intrinsics {text!r}: give four numbers fx,fy,cx,cy in pixels, e.g. 525,525,319.5,239.5"
            )
        return cls(*values, baseline=baseline)

    @classmethod
    def default(cls, height: int, width: int, fov_deg: float = 60.0) -> Intrinsics:
        """A centred pinhole with horizontal field of view ``fov_deg`` (when the camera is unknown)."""
        import math

        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(f, f, width / 2, height / 2)

    def scaled(self, factor: float) -> Intrinsics:
        """The intrinsics of the image resized by ``factor`` (pixel centres kept: c scales too)."""
        return Intrinsics(
            self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor, self.baseline
        )

    def cropped(self, top: int, left: int) -> Intrinsics:
        return Intrinsics(self.fx, self.fy, self.cx - left, self.cy - top, self.baseline)

    def tensor(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[fx, fy, cx, cy, baseline]``."""
        return torch.tensor([self.fx, self.fy, self.cx, self.cy, self.baseline], device=device, dtype=dtype)


def _k(K, depth: torch.Tensor) -> torch.Tensor:
    """Intrinsics as a ``[B, 5]`` (or ``[5]``) tensor broadcastable against ``depth [..., H, W]``."""
    if isinstance(K, Intrinsics):
        K = K.tensor(depth.device, depth.dtype)
    K = torch.as_tensor(K, device=depth.device, dtype=depth.dtype)
    if K.shape[-1] == 4:
        K = torch.cat([K, torch.ones_like(K[..., :1])], -1)
    if K.shape[-1] != 5:
        raise ValueError(f"intrinsics must be [fx, fy, cx, cy(, baseline)], got shape {tuple(K.shape)}")
    lead = depth.dim() - 2
    while K.dim() - 1 < lead:  # [B, 5] against [B, C, H, W]: [B, 1, 5]
        K = K.unsqueeze(-2)
    return K[..., None, None, :]


def disparity_to_depth(disparity: torch.Tensor, K) -> torch.Tensor:
    r"""z-depth :math:`f_x b / \delta` of a disparity map (NaN where the disparity is not > 0)."""
    k = _k(K, disparity)
    return torch.where(disparity > 0, k[..., 0] * k[..., 4] / disparity.clamp_min(1e-12), torch.nan)


def depth_to_disparity(depth: torch.Tensor, K) -> torch.Tensor:
    r"""Disparity :math:`f_x b / z` of a z-depth map (NaN where the depth is not > 0)."""
    return disparity_to_depth(depth, K)  # the same involution


def to_z_depth(depth: torch.Tensor, K, kind: DepthKind = "perspective") -> torch.Tensor:
    """The z-depth of a map of any kind (perspective and orthographic maps are z-depths already)."""
    if kind not in KINDS:
        raise ValueError(f"unknown depth kind {kind!r}: choose from {', '.join(KINDS)}")
    return disparity_to_depth(depth, K) if kind == "disparity" else depth


def points(depth: torch.Tensor, K, kind: DepthKind = "perspective") -> torch.Tensor:
    """Camera-space points ``[..., H, W, 3]`` of a depth map ``[..., H, W]`` (see the module docstring)."""
    z = to_z_depth(depth, K, kind)
    k = _k(K, depth)
    H, W = depth.shape[-2:]
    u = torch.arange(W, device=depth.device, dtype=depth.dtype) + 0.5
    v = torch.arange(H, device=depth.device, dtype=depth.dtype)[:, None] + 0.5
    x = (u - k[..., 2]) / k[..., 0]
    y = (v - k[..., 3]) / k[..., 1]
    if kind == "orthographic":
        return torch.stack([x.expand_as(z), y.expand_as(z), z], -1)
    return torch.stack([x * z, y * z, z], -1)


def _forward_diff(X: torch.Tensor, dim: int) -> torch.Tensor:
    d = X.diff(dim=dim)
    last = d.narrow(dim, d.shape[dim] - 1, 1)
    return torch.cat([d, last], dim)  # the last row/column replicated


def normals_from_points(X: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals ``[..., H, W, 3]`` of a point map ``[..., H, W, 3]`` by forward differences."""
    du = _forward_diff(X, -2)  # along the columns (u)
    dv = _forward_diff(X, -3)  # along the rows (v)
    n = torch.linalg.cross(dv, du, dim=-1)
    # sqrt(x + eps^2) keeps the gradient finite where the cross product vanishes
    return n / torch.sqrt((n * n).sum(-1, keepdim=True) + eps * eps)


def _safe(depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Invalid pixels replaced by the image's mean valid depth, through ``where`` (no NaN gradient)."""
    fill = torch.where(valid, depth, 0).flatten(-2).sum(-1) / valid.flatten(-2).sum(-1).clamp_min(1)
    fill = torch.where(fill > 0, fill, torch.ones_like(fill)).detach()
    return torch.where(valid, depth, fill[..., None, None])


def normals(
    depth: torch.Tensor, K, kind: DepthKind = "perspective", mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normals ``[..., H, W, 3]`` of a depth map and their validity ``[..., H, W]``.

    Pixels that are zero, negative, NaN or outside ``mask`` are invalid; a normal is valid where its
    pixel and its right and lower neighbours (the last row/column: the previous ones) are. Invalid
    depths never enter the arithmetic, so gradients stay finite everywhere.
    """
    valid = valid_mask(depth) if mask is None else valid_mask(depth) & mask
    X = points(_safe(depth, valid), K, kind)
    n = normals_from_points(X)
    return n, valid & _neighbour(valid, -1) & _neighbour(valid, -2)


def _neighbour(valid: torch.Tensor, dim: int) -> torch.Tensor:
    """``valid`` of the next pixel along ``dim`` (the last one: of the previous, as the differences are)."""
    n = valid.shape[dim]
    if n < 2:
        return valid
    return torch.cat([valid.narrow(dim, 1, n - 1), valid.narrow(dim, n - 2, 1)], dim)


def valid_mask(depth: torch.Tensor) -> torch.Tensor:
    """True where the depth is a finite number > 0 (sensors store holes as 0; NaN for floats)."""
    return torch.isfinite(depth) & (depth > 0)


def discontinuities(depth: torch.Tensor, threshold: float = 0.05, band: int = 0) -> torch.Tensor:
    r"""Pixels at depth discontinuities: a 4-neighbour differs by more than ``threshold`` relatively,

    :math:`|d_p - d_q| > \tau \min(d_p, d_q)`, dilated by ``band`` pixels (a ``(2 band + 1)^2`` square).
    Pixels next to invalid ones count as discontinuities too. Returns a bool map ``[..., H, W]``.
    """
    valid = valid_mask(depth)
    d = torch.where(valid, depth, 0)
    edge = torch.zeros_like(valid)
    for dim in (-1, -2):
        a, b = d.narrow(dim, 0, d.shape[dim] - 1), d.narrow(dim, 1, d.shape[dim] - 1)
        va, vb = valid.narrow(dim, 0, d.shape[dim] - 1), valid.narrow(dim, 1, d.shape[dim] - 1)
        jump = ((a - b).abs() > threshold * torch.minimum(a, b)) | (va != vb)
        lo = edge.narrow(dim, 0, d.shape[dim] - 1)
        hi = edge.narrow(dim, 1, d.shape[dim] - 1)
        lo |= jump
        hi |= jump
    edge &= valid
    if band > 0:
        shape = edge.shape
        e = edge.reshape(-1, 1, *shape[-2:]).float()
        e = F.max_pool2d(e, 2 * band + 1, stride=1, padding=band)
        edge = e.reshape(shape) > 0
    return edge
