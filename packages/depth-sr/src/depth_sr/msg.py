r"""MSG-Net (Hui, Loy and Tang, ECCV 2016): multi-scale guided depth super-resolution, as MSG-V uses it.

For a scale :math:`s = 2^m` (:math:`m = 1..4`: x2, x4, x8, x16), given an LR depth :math:`D_l` and an
HR RGB image:

* **normalisation**: :math:`\bar D_l = (D_l - a)/(b - a)` with :math:`a, b` the min and max of the
  valid LR depths (holes are filled from their valid neighbours first, see :func:`fill_holes`);
* **spectral split**: :math:`L = \mathrm{box}_{3\times3}(\bar D_l)` (low frequencies),
  :math:`H_l = \bar D_l - L` (the depth branch's input); the output is
  :math:`\bar D_h = \mathrm{bicubic}_s(L) + f_\theta(H_l, Y)` and :math:`D_h = a + (b - a)\bar D_h`;
* **intensity guidance** :math:`Y`: the luma of the RGB minus its 3x3 box blur, min-max normalised;
  a 7x7 convolution to ``y_channels``, then 5x5 convolutions to ``width`` channels with 3x3/2
  max-pools give features at HR/1, HR/2, ..., HR/2^(m-1);
* **depth branch**: a 5x5 convolution to ``depth_channels``, then per x2 stage a 5x5 stride-2
  deconvolution, concatenation with the Y features of that resolution, a fusion and a post-fusion
  5x5 convolution; a last 5x5 convolution gives one channel. PReLU after every layer but the last.

No "drift" correction is applied: the high-frequency output is used as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_sr.camera import valid_mask
from depth_sr.config import MSGConfig

__all__ = ["MSGNet", "fill_holes", "guidance", "normalise"]


def _conv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU(cout))


def box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 box blur with replicated borders, ``[B, C, H, W]``."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def _minmax(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.where(valid, x, torch.inf).flatten(1).amin(1)
    hi = torch.where(valid, x, -torch.inf).flatten(1).amax(1)
    lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
    hi = torch.where(torch.isfinite(hi), hi, lo + 1)
    return lo[:, None, None, None], torch.maximum(hi[:, None, None, None] - lo[:, None, None, None],
                                                  torch.full_like(lo[:, None, None, None], 1e-6))  # fmt: skip


def fill_holes(depth: torch.Tensor, valid: torch.Tensor, iterations: int = 64) -> torch.Tensor:
    """Holes ``[B, 1, H, W]`` filled by repeated 3x3 averaging of the valid neighbours (for the
    network's input only: the output is masked where the input was invalid)."""
    d, w = torch.where(valid, depth, 0), valid.to(depth.dtype)
    for _ in range(iterations):
        if bool(w.min() > 0):
            break
        s, c = box3(d * (w > 0)), box3(w > 0 if w.dtype == torch.bool else (w > 0).to(d.dtype))
        grow = (w == 0) & (c > 0)
        d = torch.where(grow, s / c.clamp_min(1e-12), d)
        w = torch.where(grow, torch.ones_like(w), w)
    return torch.where(w > 0, d, d.sum() / w.sum().clamp_min(1))


def normalise(lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hole-filled, min-max normalised LR depth ``[B, 1, h, w]`` and ``(a, b - a, valid)``."""
    valid = valid_mask(lr)
    if not bool(valid.flatten(1).any(1).all()):
        raise ValueError("the depth map has no valid pixel (all zero, negative or NaN): nothing to upsample")
    lo, rng = _minmax(lr, valid)
    filled = fill_holes(torch.where(valid, lr, 0), valid)
    return (filled - lo) / rng, lo, rng, valid


def guidance(rgb: torch.Tensor) -> torch.Tensor:
    """The Y guidance ``[B, 1, H, W]``: luma minus its 3x3 box blur, min-max normalised per image."""
    if rgb.shape[1] == 3:
        y = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    else:
        y = rgb[:, :1]
    h = y - box3(y)
    lo, rng = _minmax(h, torch.ones_like(h, dtype=torch.bool))
    return (h - lo) / rng


class MSGNet(nn.Module):
    """MSG-Net for one scale (see the module docstring). ``forward(lr, rgb) -> hr`` in depth units.

    ``lr``: ``[B, 1, h, w]`` (or ``[B, h, w]``) z-depth or disparity, 0/NaN for holes; ``rgb``:
    ``[B, 3, s h, s w]`` in [0, 1]. The output is ``[B, 1, s h, s w]``, finite everywhere; use
    :meth:`upsample` for the output masked where the input had holes.
    """

    def __init__(self, config: MSGConfig | None = None):
        super().__init__()
        self.config = c = config or MSGConfig()
        m = c.stages
        self.y_in = _conv(1, c.y_channels, 7)
        self.y_convs = nn.ModuleList(
            [_conv(c.y_channels if i == 0 else c.width, c.width, 5) for i in range(m)]
        )
        self.d_in = _conv(1, c.depth_channels, 5)
        self.ups = nn.ModuleList(
            [nn.Sequential(nn.ConvTranspose2d(c.depth_channels if i == 0 else c.width, c.width, 5, stride=2,
                                              padding=2, output_padding=1), nn.PReLU(c.width))
             for i in range(m)]
        )  # fmt: skip
        self.fuse = nn.ModuleList([_conv(2 * c.width, c.width, 5) for _ in range(m)])
        self.post = nn.ModuleList([_conv(c.width, c.width, 5) for _ in range(m)])
        self.out = nn.Conv2d(c.width, 1, 5, padding=2)

    def high_frequencies(self, h_lr: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The network :math:`f_\\theta`: the normalised HR high frequencies from LR ones and the Y guidance."""
        feats, f = [], self.y_in(y)
        for i, conv in enumerate(self.y_convs):  # HR/1, HR/2, ..., HR/2^(m-1)
            f = conv(f if i == 0 else F.max_pool2d(f, 3, stride=2, padding=1))
            feats.append(f)
        x = self.d_in(h_lr)
        for up, fuse, post, g in zip(self.ups, self.fuse, self.post, reversed(feats)):
            x = up(x)
            x = post(fuse(torch.cat([x, g], 1)))
        return self.out(x)

    def _check(self, lr: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lr = lr.unsqueeze(1) if lr.dim() == 3 else lr
        rgb = rgb.unsqueeze(0) if rgb.dim() == 3 else rgb
        s = self.config.scale
        if lr.dim() != 4 or lr.shape[1] != 1:
            raise ValueError(f"the LR depth must be [B, 1, h, w], got {tuple(lr.shape)}")
        want = (lr.shape[-2] * s, lr.shape[-1] * s)
        if tuple(rgb.shape[-2:]) != want:
            raise ValueError(
                f"for x{s} an LR depth of {lr.shape[-2]}x{lr.shape[-1]} needs a {want[0]}x{want[1]} RGB image, got "
                f"{rgb.shape[-2]}x{rgb.shape[-1]}: resize or crop the RGB, or choose another --scale"
            )
        return lr, rgb.to(lr.dtype)

    def forward(
        self, lr: torch.Tensor, rgb: torch.Tensor, *, normalised_output: bool = False
    ) -> torch.Tensor:
        """HR depth; with ``normalised_output`` the prediction on the LR map's normalised scale (what
        training compares; through ``forward`` so a DistributedDataParallel wrapper sees the call)."""
        lr, rgb = self._check(lr, rgb)
        norm, lo, rng, _ = normalise(lr)
        pred = self.normalised(norm, rgb)
        return pred if normalised_output else lo + rng * pred

    def normalised(self, norm: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """:math:`\\bar D_h = \\mathrm{bicubic}(L) + f_\\theta(\\bar D_l - L, Y)` on normalised depth."""
        low = box3(norm)
        up = F.interpolate(low, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return up + self.high_frequencies(norm - low, guidance(rgb))

    @torch.no_grad()
    def upsample(self, lr: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """HR depth ``[B, 1, H, W]``, NaN where the LR pixel underneath was a hole (nothing invented there)."""
        lr, rgb = self._check(lr, rgb)
        hr = self(lr, rgb)
        keep = F.interpolate(valid_mask(lr).float(), scale_factor=self.config.scale, mode="nearest") > 0
        return torch.where(keep & (hr > 0), hr, torch.nan)
