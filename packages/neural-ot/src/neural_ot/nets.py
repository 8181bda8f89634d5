r"""The networks of NOT/GNOT: stochastic maps :math:`T(x, z)` and potentials :math:`f(y)`.

Every map takes flat inputs ``x: [n, d]`` and noise ``z: [n, z_dim]`` (or None when ``z_dim = 0``) and
returns ``[n, d]``; image maps view ``x`` as ``image_shape = (C, H, W)``. With ``residual=True`` the
map is :math:`x + g(x, z)` with the last layer of :math:`g` zeroed, so training starts at the
identity (the quadratic-cost optimum for equal marginals).

* ``mlp`` / ``resnet``: :class:`papercore.ot.MLP` / :class:`papercore.ot.ResNetMLP` on :math:`[x, z]`;
* ``unet``: a two-level UNet (:class:`UNet`) whose bottleneck is shifted by a linear image of z,
  like GNOT's conditional UNet;
* potentials: ``mlp``, ``resnet`` (a residual MLP for vectors, :class:`ConvResNet` for images).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from papercore.ot import MLP, ResNetMLP

__all__ = ["ConvResNet", "StochasticMap", "UNet", "build_map", "build_potential"]


def _zero_last(module: nn.Module) -> None:
    last = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)


class StochasticMap(nn.Module):
    """:math:`T(x, z) = x + g([x, z])` (``residual``) or :math:`g([x, z])`, for an MLP or ResNet ``g``."""

    def __init__(self, dim: int, z_dim: int, kind: str = "mlp", width: int = 256, depth: int = 3,
                 residual: bool = True):  # fmt: skip
        super().__init__()
        self.dim, self.z_dim, self.residual = dim, z_dim, residual
        if kind == "mlp":
            self.net = MLP(dim + z_dim, dim, width, depth)
        elif kind == "resnet":
            self.net = ResNetMLP(dim + z_dim, dim, width, depth)
        else:
            raise ValueError(f"map_net must be mlp, resnet or unet, got {kind!r}")
        if residual:
            _zero_last(self.net)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = x if z is None or self.z_dim == 0 else torch.cat([x, z], 1)
        out = self.net(h)
        return x + out if self.residual else out


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU(),
    )  # fmt: skip


class UNet(nn.Module):
    """A two-level UNet map for ``[C, H, W]`` images (H, W divisible by 4); noise enters the bottleneck."""

    def __init__(
        self, image_shape: tuple[int, int, int], z_dim: int = 0, base: int = 32, residual: bool = True
    ):
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"the UNet needs image sides divisible by 4, got {h}x{w}")
        self.shape, self.dim, self.z_dim, self.residual = tuple(image_shape), c * h * w, z_dim, residual
        b = base
        self.down1, self.down2, self.mid = _block(c, b), _block(b, 2 * b), _block(2 * b, 4 * b)
        self.pool = nn.AvgPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2), _block(4 * b, 2 * b)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * b, b, 2, stride=2), _block(2 * b, b)
        self.head = nn.Conv2d(b, c, 1)
        self.z_proj = nn.Linear(z_dim, 4 * b) if z_dim else None
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        img = x.reshape(len(x), *self.shape)
        d1 = self.down1(img)
        d2 = self.down2(self.pool(d1))
        m = self.mid(self.pool(d2))
        if self.z_proj is not None and z is not None:
            m = m + self.z_proj(z)[:, :, None, None]
        u2 = self.dec2(torch.cat([self.up2(m), d2], 1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
        out = self.head(u1).flatten(1)
        return x + out if self.residual else out


class ConvResNet(nn.Module):
    """A small ResNet potential for ``[C, H, W]`` images (WGAN-QC's ResNet_D in miniature): scalar per image."""

    def __init__(self, image_shape: tuple[int, int, int], base: int = 32, blocks: int = 2):
        super().__init__()
        c, h, w = image_shape
        self.shape = tuple(image_shape)
        self.stem = nn.Conv2d(c, base, 3, padding=1)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(base, base, 3, padding=1),
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(base, base, 3, padding=1),
                )
                for _ in range(blocks)
            ]  # fmt: skip
        )
        self.pool = nn.AvgPool2d(2) if min(h, w) >= 16 else nn.Identity()
        hh, ww = (h // 2, w // 2) if min(h, w) >= 16 else (h, w)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(base * hh * ww, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.reshape(len(x), *self.shape))
        for i, b in enumerate(self.blocks):
            h = h + b(h)
            if i == 0:
                h = self.pool(h)
        return self.head(h).squeeze(-1)


class _Scalar(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y).reshape(len(y))


def build_map(kind: str, dim: int, z_dim: int, width: int, depth: int, image_shape=None,
              residual: bool = True) -> nn.Module:  # fmt: skip
    """A map network by name (``image_shape`` required for ``unet``)."""
    if kind == "unet":
        if image_shape is None or math.prod(image_shape) != dim:
            raise ValueError(
                f"map_net=unet needs the image shape (C, H, W) with C*H*W = {dim}, got {image_shape}: "
                "pass image_shape (CLI: --image-shape C H W)"
            )
        return UNet(tuple(image_shape), z_dim, max(8, width // 8), residual)
    return StochasticMap(dim, z_dim, kind, width, depth, residual)


def build_potential(kind: str, dim: int, width: int, depth: int, image_shape=None) -> nn.Module:
    """A potential network by name; ``resnet`` is convolutional when ``image_shape`` is given."""
    if kind == "mlp":
        return _Scalar(MLP(dim, 1, width, depth))
    if kind == "resnet":
        if image_shape is not None:
            return ConvResNet(tuple(image_shape), max(8, width // 8), depth)
        return _Scalar(ResNetMLP(dim, 1, width, depth))
    raise ValueError(f"potential_net must be mlp or resnet, got {kind!r}")
