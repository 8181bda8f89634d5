r"""Classical baselines on the same inputs as the networks: bicubic, joint bilateral upsampling and
the guided filter (our own torch implementations, CPU or GPU, hole-aware).

* :func:`bicubic`: bicubic interpolation of the hole-filled LR depth;
* :func:`joint_bilateral` (Kopf et al. 2007): for an HR pixel :math:`p` with LR position
  :math:`p_\downarrow = (p + \tfrac12)/s - \tfrac12`,

  .. math:: D(p) = \frac{\sum_{q} D_l(q)\, e^{-\|p_\downarrow - q\|^2 / 2\sigma_s^2}\,
            e^{-(I(p) - I_\downarrow(q))^2 / 2\sigma_r^2}}{\sum_q (\dots)}

  over the valid LR pixels :math:`q` of a ``(2 r + 1)^2`` window, :math:`I` the HR luma and
  :math:`I_\downarrow` its area average;
* :func:`guided_filter` (He et al. 2010) of the bicubic upsampling, guided by the HR luma:
  per window :math:`a = \mathrm{cov}(I, D)/(\mathrm{var}(I) + \epsilon)`, :math:`b = \bar D - a \bar I`,
  output :math:`\bar a I + \bar b` (box means of radius ``radius``).

Every function takes ``lr [B, 1, h, w]`` (0/NaN holes) and ``rgb [B, 3, H, W]`` and returns
``[B, 1, H, W]`` with NaN where the LR pixel underneath was a hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_sr.camera import valid_mask
from depth_sr.msg import fill_holes

__all__ = ["BASELINES", "bicubic", "guided_filter", "joint_bilateral", "luma"]


def luma(rgb: torch.Tensor) -> torch.Tensor:
    return 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3] if rgb.shape[1] == 3 else rgb[:, :1]


def _mask_out(hr: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    keep = F.interpolate(valid_mask(lr).float(), scale_factor=scale, mode="nearest") > 0
    return torch.where(keep & (hr > 0), hr, torch.nan)


def _scale(lr, rgb) -> int:
    s = rgb.shape[-1] // lr.shape[-1]
    if s * lr.shape[-1] != rgb.shape[-1] or s * lr.shape[-2] != rgb.shape[-2]:
        raise ValueError(f"the RGB ({rgb.shape[-2]}x{rgb.shape[-1]}) must be an integer multiple of the LR depth "
                         f"({lr.shape[-2]}x{lr.shape[-1]})")  # fmt: skip
    return s


def bicubic(lr: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Bicubic upsampling (guidance unused), holes masked."""
    s = _scale(lr, rgb)
    filled = fill_holes(lr, valid_mask(lr))
    return _mask_out(F.interpolate(filled, scale_factor=s, mode="bicubic", align_corners=False), lr, s)


def joint_bilateral(
    lr: torch.Tensor, rgb: torch.Tensor, radius: int = 2, sigma_spatial: float = 1.0, sigma_range: float = 0.1
) -> torch.Tensor:
    """Joint bilateral upsampling (see the module docstring); ``sigma_spatial`` in LR pixels,
    ``sigma_range`` in luma units ([0, 1])."""
    s = _scale(lr, rgb)
    B, _, h, w = lr.shape
    H, W = h * s, w * s
    I = luma(rgb)
    I_lr = F.avg_pool2d(I, s)
    valid = valid_mask(lr)
    d = torch.where(valid, lr, 0)
    pos_v = (torch.arange(H, device=lr.device, dtype=lr.dtype) + 0.5) / s - 0.5
    pos_u = (torch.arange(W, device=lr.device, dtype=lr.dtype) + 0.5) / s - 0.5
    base_v, base_u = pos_v.round().long(), pos_u.round().long()
    num = torch.zeros(B, 1, H, W, device=lr.device, dtype=lr.dtype)
    den = torch.zeros_like(num)
    for dv in range(-radius, radius + 1):
        qv = (base_v + dv).clamp(0, h - 1)
        for du in range(-radius, radius + 1):
            qu = (base_u + du).clamp(0, w - 1)
            ws = torch.exp(
                -((pos_v - qv)[:, None] ** 2 + (pos_u - qu)[None, :] ** 2) / (2 * sigma_spatial**2)
            )
            dq = d[:, :, qv][:, :, :, qu]
            iq = I_lr[:, :, qv][:, :, :, qu]
            vq = valid[:, :, qv][:, :, :, qu]
            wr = torch.exp(-((I - iq) ** 2) / (2 * sigma_range**2))
            wgt = torch.where(vq, ws * wr, 0)
            num = num + wgt * dq
            den = den + wgt
    out = torch.where(den > 1e-12, num / den.clamp_min(1e-12), 0)
    return _mask_out(out, lr, s)


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def guided_filter(lr: torch.Tensor, rgb: torch.Tensor, radius: int = 4, eps: float = 1e-3) -> torch.Tensor:
    """The guided filter of the bicubic upsampling with the HR luma as guide; ``eps`` relative to
    the squared depth range of each image."""
    s = _scale(lr, rgb)
    valid = valid_mask(lr)
    filled = fill_holes(lr, valid)
    p = F.interpolate(filled, scale_factor=s, mode="bicubic", align_corners=False)
    lo = p.flatten(1).amin(1)[:, None, None, None]
    rng = (p.flatten(1).amax(1)[:, None, None, None] - lo).clamp_min(1e-6)
    p = (p - lo) / rng
    I = luma(rgb).to(p.dtype)
    mI, mp = _box(I, radius), _box(p, radius)
    a = (_box(I * p, radius) - mI * mp) / (_box(I * I, radius) - mI * mI + eps)
    b = mp - a * mI
    q = _box(a, radius) * I + _box(b, radius)
    return _mask_out(lo + rng * q, lr, s)


#: name -> function(lr, rgb)
BASELINES = {"bicubic": bicubic, "joint bilateral": joint_bilateral, "guided filter": guided_filter}
