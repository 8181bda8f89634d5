import numpy as np
import pytest
import torch

from depth_sr.baselines import BASELINES
from depth_sr.camera import Intrinsics
from depth_sr.metrics import evaluate, mean_metrics, ssim
from depth_sr.scenes import area_downsample

K = Intrinsics(50.0, 50.0, 16.0, 16.0)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_keep_a_flat_wall_and_mask_holes(name):
    hr = torch.full((1, 1, 32, 32), 3.0, dtype=torch.float64)
    lr = area_downsample(hr, 4)
    rgb = torch.rand(1, 3, 32, 32, dtype=torch.float64)  # texture everywhere: none may be copied
    out = BASELINES[name](lr, rgb)
    assert (out - hr).abs().max() < 1e-9
    lr[..., 1, 1] = 0
    out = BASELINES[name](lr, rgb)
    assert torch.isnan(out[..., 4:8, 4:8]).all() and torch.isfinite(out).sum() == 1024 - 16


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 40, 40, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(1, 1, 40, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    want = metrics.structural_similarity(x[0, 0].numpy(), y[0, 0].numpy(), data_range=1.0, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False)  # fmt: skip
    assert abs(float(ssim(x, y)) - want) < 1e-3


def test_evaluate_perfect_and_hand_checked():
    g = torch.Generator().manual_seed(1)
    u = torch.arange(24, dtype=torch.float64)
    gt = 2 + 0.3 * torch.sin(u / 5 + torch.rand(2, 1, 1, generator=g, dtype=torch.float64)) * torch.cos(
        u[:, None] / 7
    )
    m = mean_metrics(evaluate(gt, gt, K))
    assert (
        m["rmse"] == 0
        and m["msev"] == 0
        and m["badpix"] == 0
        and m["pct_11"] == 100
        and abs(m["ssim"] - 1) < 1e-9
    )
    pred = gt * 1.01 + 0.0  # 1% everywhere: rmse = 0.01 sqrt(mean gt^2); badpix(2%) = 0, badpix(0.5%) = 100
    per = evaluate(pred, gt, K, delta=0.005)
    assert np.allclose(per["rmse"], [0.01 * float(x.pow(2).mean().sqrt()) for x in gt])
    assert per["badpix"] == [100.0, 100.0] and max(per["msev"]) < 1e-20  # scaling keeps the normals
    pred[0, 5, 5] = float("nan")  # holes in the prediction are left out, not scored as 0
    assert np.isfinite(mean_metrics(evaluate(pred, gt, K))["rmse"])
