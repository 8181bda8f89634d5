r"""Rotations, random similarity/affine maps and unit-ball normalisation of point clouds.

Every function takes an optional ``torch.Generator``; the tensors it returns live on the
generator's device (CPU or CUDA), so the same seed gives the same shapes on either.

* :func:`random_rotation`: a uniform rotation of :math:`SO(3)` (Shoemake's uniform unit quaternion)
  or, with ``axis="z"``, a uniform angle about z (closer to ShapeNet's aligned setting);
* :func:`rotation_about`: the rotation by an angle about an axis (Rodrigues);
* :func:`normalize_unit_ball`: recentre a cloud on its bounding-box centre and scale it so that its
  farthest point lies at ``radius`` exactly (latent_3d_points' clouds live in the ball of radius 0.5).
"""

from __future__ import annotations

import math

import torch

__all__ = ["normalize_unit_ball", "quaternion_to_matrix", "random_rotation", "rotation_about", "uniform"]


def _device(generator: torch.Generator | None, device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def uniform(
    shape, low: float = 0.0, high: float = 1.0, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """``U[low, high)`` samples of ``shape`` in float64 on the generator's device."""
    dev = _device(generator, device)
    if isinstance(shape, int):
        shape = (shape,)
    return low + (high - low) * torch.rand(shape, generator=generator, device=dev, dtype=torch.float64)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions ``[..., 4]`` (w, x, y, z)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def random_rotation(
    generator: torch.Generator | None = None, axis: str | None = "so3", n: int | None = None, device=None
) -> torch.Tensor:
    r"""A random rotation ``[3, 3]`` (or ``[n, 3, 3]``), float64.

    ``axis="so3"``: Haar-uniform on :math:`SO(3)` (Shoemake 1992: with :math:`u_1, u_2, u_3 \sim U[0,1)`,
    :math:`q = (\sqrt{1-u_1}\sin 2\pi u_2, \sqrt{1-u_1}\cos 2\pi u_2, \sqrt{u_1}\sin 2\pi u_3, \sqrt{u_1}\cos 2\pi u_3)`
    is a uniform unit quaternion). ``axis="z"``: a uniform angle about z. ``None``: the identity.
    """
    m = 1 if n is None else n
    dev = _device(generator, device)
    if axis is None or axis == "none":
        R = torch.eye(3, dtype=torch.float64, device=dev).expand(m, 3, 3).clone()
    elif axis == "z":
        R = rotation_about(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=dev),
                           uniform(m, 0, 2 * math.pi, generator, dev))  # fmt: skip
    elif axis == "so3":
        u1, u2, u3 = uniform((3, m), generator=generator, device=dev)
        a, b = torch.sqrt(1 - u1), torch.sqrt(u1)
        q = torch.stack([a * torch.sin(2 * math.pi * u2), a * torch.cos(2 * math.pi * u2),
                         b * torch.sin(2 * math.pi * u3), b * torch.cos(2 * math.pi * u3)], -1)  # fmt: skip
        R = quaternion_to_matrix(q)
    else:
        raise ValueError(f"axis must be 'so3', 'z' or None, got {axis!r}")
    return R[0] if n is None else R


def rotation_about(axis: torch.Tensor, angle) -> torch.Tensor:
    r"""Rotation by ``angle`` (radians; a number or a tensor ``[n]``) about ``axis`` ``[3]``:
    :math:`R = I + \sin\theta K + (1 - \cos\theta) K^2` with :math:`K` the cross-product matrix of the unit axis."""
    axis = torch.as_tensor(axis, dtype=torch.float64)
    k = axis / axis.norm()
    angle = torch.as_tensor(angle, dtype=torch.float64, device=k.device)
    K = torch.zeros(3, 3, dtype=torch.float64, device=k.device)
    K[0, 1], K[0, 2], K[1, 0], K[1, 2], K[2, 0], K[2, 1] = -k[2], k[1], k[2], -k[0], -k[1], k[0]
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3, dtype=torch.float64, device=k.device) + s * K + (1 - c) * (K @ K)


def normalize_unit_ball(
    points: torch.Tensor, radius: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recentre clouds ``[..., n, 3]`` on their bounding-box centre and scale them into the ball of ``radius``.

    Returns ``(normalized, center, scale)`` with ``normalized = (points - center) * scale``; the
    farthest point of each cloud lies at distance ``radius`` exactly.
    """
    if points.shape[-1] != 3 or points.shape[-2] < 1:
        raise ValueError(f"expected clouds [..., n, 3] with n >= 1, got {tuple(points.shape)}")
    center = (points.amax(-2, keepdim=True) + points.amin(-2, keepdim=True)) / 2
    far = (points - center).norm(dim=-1).amax(-1, keepdim=True)[..., None]
    if bool((far <= 0).any()):
        raise ValueError("a cloud whose points all coincide cannot be scaled into the unit ball")
    scale = radius / far
    return (points - center) * scale, center, scale
