r"""DIP-V: a Deep Image Prior fitted to one LR depth map with the visual loss; no training data.

A small convolutional encoder-decoder :math:`g_\theta` maps a fixed noise image :math:`z` (and, with
``guide``, the Y guidance of :mod:`depth_sr.msg`) to a normalised HR correction; the estimate is

.. math:: \bar D_h = \mathrm{bicubic}_s(\bar D_l) + g_\theta(z, Y),

with :math:`g_\theta` starting at 0 (its last layer is zero-initialised), so the optimisation starts
from bicubic. With :math:`A` the area downsampling by :math:`s`, the loss on the valid LR pixels is

.. math:: \mathcal L(\theta) = \mathrm{mean}\,(A \bar D_h - \bar D_l)^2
          + \lambda\, \mathrm{MSE}_v(A D_h, D_l; K_l),

the visual loss taken at the LR resolution (the only depth there is), with the LR intrinsics
:math:`K_l`. The network's architecture is the prior: it is optimised for ``steps`` Adam steps
(fixed in advance; nothing is selected on the truth).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_sr.camera import Intrinsics, valid_mask
from depth_sr.config import DIPConfig
from depth_sr.msg import guidance, normalise
from depth_sr.scenes import area_downsample
from depth_sr.visual import mse_v

__all__ = ["DIPNet", "dip_v"]


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))  # fmt: skip


class DIPNet(nn.Module):
    """A two-level U-Net (the hourglass of Ulyanov et al., shrunk), zero-initialised output."""

    def __init__(self, cin: int, width: int = 32):
        super().__init__()
        self.e1, self.e2 = _block(cin, width), _block(width, width)
        self.mid = _block(width, width)
        self.d2, self.d1 = _block(2 * width, width), _block(2 * width, width)
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        H, W = x.shape[-2:]
        a = self.e1(x)
        b = self.e2(F.avg_pool2d(a, 2, ceil_mode=True))
        c = self.mid(F.avg_pool2d(b, 2, ceil_mode=True))
        b = self.d2(torch.cat([b, F.interpolate(c, size=b.shape[-2:], mode="bilinear")], 1))
        a = self.d1(torch.cat([a, F.interpolate(b, size=(H, W), mode="bilinear")], 1))
        return self.out(a)


def dip_v(
    lr: torch.Tensor, rgb: torch.Tensor, K_lr: Intrinsics | torch.Tensor, config: DIPConfig | None = None,
    *, seed: int = 0, progress: bool = False,
) -> torch.Tensor:  # fmt: skip
    """DIP-V upsampling of one LR depth ``[1, 1, h, w]`` (or ``[h, w]``) with its RGB ``[1, 3, H, W]``.

    ``K_lr``: the intrinsics of the LR map. Returns ``[1, 1, H, W]``, NaN where the LR pixel
    underneath was a hole.
    """
    cfg = config or DIPConfig()
    lr = lr.reshape(1, 1, *lr.shape[-2:])
    rgb = rgb.reshape(1, -1, *rgb.shape[-2:]).to(lr)
    s = rgb.shape[-1] // lr.shape[-1]
    if s < 2 or s * lr.shape[-1] != rgb.shape[-1] or s * lr.shape[-2] != rgb.shape[-2]:
        raise ValueError(f"the RGB ({rgb.shape[-2]}x{rgb.shape[-1]}) must be an integer multiple (>= 2) of the LR "
                         f"depth ({lr.shape[-2]}x{lr.shape[-1]})")  # fmt: skip
    norm, lo, rng, valid = normalise(lr)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # smooth noise (drawn at the LR size, upsampled): full-resolution noise would let the net put
    # high frequencies that the area downsampling cannot see, and the data term cannot remove
    z = 0.1 * torch.randn(1, cfg.noise_channels, *lr.shape[-2:], generator=g).to(lr)
    z = F.interpolate(z, scale_factor=s, mode="bilinear", align_corners=False)
    base = F.interpolate(norm, scale_factor=s, mode="bicubic", align_corners=False)
    x = torch.cat([z, base, guidance(rgb)] if cfg.guide else [z, base], 1)
    net = DIPNet(x.shape[1], cfg.width).to(lr)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps = range(cfg.steps)
    if progress:
        from papercore.runtime import progress as bar

        steps = bar(steps, desc="dip-v", total=cfg.steps)
    n_valid = valid.sum().clamp_min(1)
    for _ in steps:
        pred = base + net(x)
        down = area_downsample(pred[:, 0], s)[:, None]
        data = (torch.where(valid, down - norm, 0) ** 2).sum() / n_valid
        loss = data
        if cfg.lam > 0:
            loss = loss + cfg.lam * mse_v((lo + rng * down)[:, 0], lr[:, 0], K_lr, mask=valid[:, 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():  # train-mode BatchNorm: the input is fixed, so its statistics are those optimised
        hr = lo + rng * (base + net(x))
    keep = F.interpolate(valid_mask(lr).float(), scale_factor=s, mode="nearest") > 0
    return torch.where(keep & (hr > 0), hr, torch.nan)
