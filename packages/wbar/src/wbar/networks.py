"""The networks of WIN: a generator, per-marginal maps and potentials; MLPs for vectors, convolutional
networks for images (``[C, H, W]`` flattened to vectors at the interfaces, so samplers stay ``[n, d]``)."""

from __future__ import annotations

import math

from torch import nn

from papercore.ot.icnn import MLP


class _Unflatten(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.view(len(x), *self.shape)


class ConvGenerator(nn.Module):
    """z -> image: a linear stem to a 4x4 map, then upsampling blocks (nearest + conv + GroupNorm + SiLU)."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        c, h, w = shape
        ups = int(math.log2(h // 4))
        if h != w or 4 * 2**ups != h:
            raise ValueError(f"conv networks take square images of side 4·2^k, got {h}x{w}")
        ch = width * 2**ups
        layers: list[nn.Module] = [nn.Linear(z_dim, ch * 16), _Unflatten((ch, 4, 4))]
        for _ in range(ups):
            layers += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(ch, ch // 2, 3, padding=1),
                nn.GroupNorm(8, ch // 2),
                nn.SiLU(),
            ]
            ch //= 2
        layers += [nn.Conv2d(ch, c, 3, padding=1), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class ConvMap(nn.Module):
    """image -> image: a residual network at full resolution (the map stays close to the identity early)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 32, blocks: int = 4):
        super().__init__()
        c = shape[0]
        self.shape = shape
        self.stem = nn.Conv2d(c, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
                for _ in range(blocks)
            ]
        )
        self.head = nn.Conv2d(width, c, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        img = x.view(len(x), *self.shape)
        h = self.stem(img)
        for b in self.blocks:
            h = h + b(h)
        return (img + self.head(h)).flatten(1)


class ConvPotential(nn.Module):
    """image -> scalar: strided convolutions with LeakyReLU, then a linear read-out."""

    def __init__(self, shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        c, h, _ = shape
        layers: list[nn.Module] = [_Unflatten(shape)]
        ch_in, ch = c, width
        while h > 4:
            layers += [nn.Conv2d(ch_in, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch_in, ch, h = ch, ch * 2, h // 2
        layers += [nn.Flatten(), nn.Linear(ch_in * h * h, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def build(
    kind: str, dim: int, z_dim: int, width: int | None, depth: int, shape=None
) -> tuple[nn.Module, callable, callable]:
    """(generator, make_map, make_potential) for vectors (``mlp``) or images (``conv``)."""
    if kind == "mlp":
        w = width or max(100, 2 * dim)
        return (MLP(z_dim, dim, w, depth), lambda: MLP(dim, dim, w, depth),
                lambda: _Scalar(MLP(dim, 1, w, depth)))  # fmt: skip
    if shape is None:
        raise ValueError("conv networks need the image shape (C, H, W)")
    w = width or 32
    return ConvGenerator(z_dim, shape, w), lambda: ConvMap(shape, w), lambda: ConvPotential(shape, w)


class _Scalar(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(-1)
