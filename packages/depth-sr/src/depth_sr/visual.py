r"""The visual loss: depth maps compared by how their surfaces render.

Lambertian shading with albedo 1 under a directional light :math:`l` (a unit vector from the
surface towards the light, in camera coordinates) is :math:`r = n \cdot l`; normals facing the
camera and lights in front of it both have a negative z.

**MSE_v** is the mean squared difference of the normal maps, averaged over the three channels and
the valid pixels :math:`\Omega` (where both normals are valid, and inside an optional mask):

.. math:: \mathrm{MSE}_v(d, d^*) = \frac{1}{3|\Omega|}\sum_{p\in\Omega}\|n_p - n^*_p\|^2,
          \qquad \mathrm{RMSE}_v = \sqrt{\mathrm{MSE}_v}.

For any orthonormal light triple :math:`L = (l_1, l_2, l_3)`, :math:`\sum_i (n\cdot l_i - n^*\cdot l_i)^2
= \|L^\top (n - n^*)\|^2 = \|n - n^*\|^2`: MSE_v *is* the mean squared difference of the
**unclamped** renders under three orthogonal lights (:data:`LIGHTS3`). Clamped renders
(:math:`\max(0, n\cdot l)`, :data:`LIGHTS4`) are for viewing and for the SSIM metric only.
"""

from __future__ import annotations

import math

import torch

from depth_sr.camera import DepthKind, normals

__all__ = ["LIGHTS3", "LIGHTS4", "mse_v", "render", "render_depth", "rmse_v"]


def _lights3() -> torch.Tensor:
    # the standard basis rotated so that (1, 1, 1)/sqrt(3) becomes (0, 0, -1): every light in front
    a = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / math.sqrt(3)
    b = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    v, c = torch.linalg.cross(a, b), float(a @ b)
    vx = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64) + vx + vx @ vx / (1 + c)
    return (R @ torch.eye(3, dtype=torch.float64)).T  # rows: R e_i


#: Three orthonormal directional lights (rows), each 54.7 degrees off the optical axis.
LIGHTS3 = _lights3()


def _unit(x, y, z):
    v = torch.tensor([x, y, z], dtype=torch.float64)
    return v / v.norm()


#: Four viewing lights (rows): upper left, upper right, lower left, lower right, 45 degrees off axis.
LIGHTS4 = torch.stack(
    [_unit(-1, -1, -1.414), _unit(1, -1, -1.414), _unit(-1, 1, -1.414), _unit(1, 1, -1.414)]
)


def render(n: torch.Tensor, lights: torch.Tensor = LIGHTS4, clamp: bool = True) -> torch.Tensor:
    """Lambertian shading ``[..., L, H, W]`` of normals ``[..., H, W, 3]`` under lights ``[L, 3]``."""
    r = torch.einsum("...hwc,lc->...lhw", n, lights.to(n))
    return r.clamp(0, 1) if clamp else r


def render_depth(
    depth: torch.Tensor,
    K,
    kind: DepthKind = "perspective",
    lights: torch.Tensor = LIGHTS4,
    clamp: bool = True,
) -> torch.Tensor:
    """Renders ``[..., L, H, W]`` of a depth map, 0 (black) where the normal is invalid."""
    n, ok = normals(depth, K, kind)
    return torch.where(ok[..., None, :, :], render(n, lights, clamp), 0)


def _masked_mean(x: torch.Tensor, ok: torch.Tensor, reduction: str) -> torch.Tensor:
    x = torch.where(ok, x, 0)
    if reduction == "none":
        return x
    dims = (-2, -1)
    per_image = x.sum(dims) / ok.sum(dims).clamp_min(1)
    return per_image if reduction == "image" else per_image.mean()


def mse_v(
    pred: torch.Tensor,
    target: torch.Tensor,
    K,
    kind: DepthKind = "perspective",
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """MSE_v between depth maps ``[..., H, W]`` (see the module docstring).

    ``K``: :class:`~depth_sr.camera.Intrinsics` or a ``[B, 4|5]`` tensor; ``mask``: pixels to score
    (invalid depths of either map are left out anyway). ``reduction``: ``"mean"`` (the mean of the
    per-image means), ``"image"`` (one value per image) or ``"none"`` (the per-pixel map, 0 where
    not scored). Gradients are finite at discontinuities and on invalid pixels.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    n1, ok1 = normals(pred, K, kind)
    n2, ok2 = normals(target, K, kind)
    ok = ok1 & ok2 if mask is None else ok1 & ok2 & mask
    err = ((n1 - n2) ** 2).mean(-1)
    return _masked_mean(err, ok, reduction)


def rmse_v(pred, target, K, kind: DepthKind = "perspective", mask=None) -> torch.Tensor:
    """The root of :func:`mse_v` per image, averaged over the batch."""
    return mse_v(pred, target, K, kind, mask, reduction="image").sqrt().mean()
