r"""Evaluation of super-resolved depth against the truth, per image, on valid pixels.

For a prediction :math:`D` and the truth :math:`D^*` (pixels where both are valid):

* ``rmse``: :math:`\sqrt{\mathrm{mean}(D - D^*)^2}`, in depth units; ``rmse_nb``: the same without a
  band of ``band`` pixels around the discontinuities of :math:`D^*` (:func:`~depth_sr.camera.discontinuities`);
* ``msev``: :math:`\mathrm{MSE}_v` (:mod:`depth_sr.visual`), on every valid normal;
* ``angle_mean``, ``angle_median`` (degrees) and ``pct_11``: the angle between forward-difference
  normals, and the % of pixels below 11.25 degrees, off the discontinuity band;
* ``ssim``: SSIM (Gaussian window, sigma 1.5, :func:`ssim`) of the clamped renders under the four
  viewing lights :data:`~depth_sr.visual.LIGHTS4`, averaged over lights and valid pixels;
* ``badpix``: % of valid pixels whose relative error :math:`|D - D^*|/D^*` exceeds ``delta``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from depth_sr.camera import DepthKind, discontinuities, normals, valid_mask
from depth_sr.visual import LIGHTS4, render

__all__ = ["METRICS", "evaluate", "mean_metrics", "ssim"]

METRICS = ("rmse", "rmse_nb", "msev", "angle_mean", "angle_median", "pct_11", "ssim", "badpix")
HIGHER_IS_BETTER = {"pct_11", "ssim"}


def _gauss(sigma: float = 1.5, radius: int = 3, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5, full: bool = False):
    r"""SSIM of images ``[B, C, H, W]`` (Wang et al. 2004): a Gaussian window of std ``sigma`` truncated at
    3.5 sigma and population statistics, as scikit-image's ``gaussian_weights=True, use_sample_covariance=False``.

    .. math:: \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
              \quad C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2.

    Returns the mean over the interior (borders of the window radius cropped), or with ``full`` the map.
    """
    r = int(3.5 * sigma + 0.5)
    w = _gauss(sigma, r, x.device, x.dtype)
    C = x.shape[1]
    w = w.expand(C, 1, -1, -1)

    def f(a):
        return F.conv2d(a, w, groups=C)

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s if full else s.mean()


def evaluate(
    pred: torch.Tensor, gt: torch.Tensor, K, kind: DepthKind = "perspective", *, band: int = 2,
    threshold: float = 0.05, delta: float = 0.02,
) -> dict[str, list[float]]:  # fmt: skip
    """Per-image metrics (see the module docstring) of ``pred`` against ``gt`` (``[B, H, W]`` or ``[B, 1, H, W]``)."""
    pred = pred[:, 0] if pred.dim() == 4 else pred
    gt = gt[:, 0] if gt.dim() == 4 else gt
    pred, gt = pred.double(), gt.double()
    both = valid_mask(pred) & valid_mask(gt)
    edge = discontinuities(gt, threshold, band)
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    n1, ok1 = normals(pred, K, kind)
    n2, ok2 = normals(gt, K, kind)
    okn = ok1 & ok2 & both
    cos = (n1 * n2).sum(-1).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos))
    r1 = render(n1, LIGHTS4.double()).flatten(0, 0)
    r2 = render(n2, LIGHTS4.double())
    smap = ssim(torch.where(okn[:, None], r1, 0), torch.where(okn[:, None], r2, 0), full=True).mean(1)
    rad = (okn.shape[-1] - smap.shape[-1]) // 2
    ok_s = okn[:, rad : okn.shape[-2] - rad, rad : okn.shape[-1] - rad]
    for i in range(len(gt)):
        v, e = both[i], pred[i] - gt[i]
        if not bool(v.any()):
            raise ValueError(f"image {i}: no pixel is valid in both the prediction and the truth")
        out["rmse"].append(float(e[v].pow(2).mean().sqrt()))
        vb = v & ~edge[i]
        out["rmse_nb"].append(float(e[vb].pow(2).mean().sqrt()) if vb.any() else math.nan)
        o = okn[i]
        out["msev"].append(float(((n1[i] - n2[i]) ** 2).mean(-1)[o].mean()) if o.any() else math.nan)
        a = ang[i][o & ~edge[i]]
        out["angle_mean"].append(float(a.mean()) if a.numel() else math.nan)
        out["angle_median"].append(float(a.median()) if a.numel() else math.nan)
        out["pct_11"].append(float(100 * (a < 11.25).double().mean()) if a.numel() else math.nan)
        os_ = ok_s[i]
        out["ssim"].append(float(smap[i][os_].mean()) if os_.any() else math.nan)
        out["badpix"].append(float(100 * ((e[v].abs() / gt[i][v]) > delta).double().mean()))
    return out


def mean_metrics(per_image: dict[str, list[float]]) -> dict[str, float]:
    """The mean over images of every metric (NaNs, from images with nothing to score, left out)."""
    res = {}
    for k, v in per_image.items():
        t = torch.tensor(v, dtype=torch.float64)
        t = t[torch.isfinite(t)]
        res[k] = float(t.mean()) if t.numel() else math.nan
    return res
