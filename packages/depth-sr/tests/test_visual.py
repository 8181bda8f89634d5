import numpy as np
import torch

from depth_sr.camera import Intrinsics, normals
from depth_sr.visual import LIGHTS3, LIGHTS4, mse_v, render, rmse_v

K = Intrinsics(30.0, 30.0, 16.0, 16.0)


def scenes():
    g = torch.Generator().manual_seed(0)
    return 2 + torch.rand(2, 32, 32, generator=g, dtype=torch.float64), 2 + torch.rand(
        2, 32, 32, generator=g, dtype=torch.float64
    )


def test_msev_zero_on_itself_and_matches_numpy():
    a, b = scenes()
    assert mse_v(a, a, K) == 0

    # independent: numpy forward differences and cross products
    def np_normals(d):
        d = d.numpy()
        H, W = d.shape
        u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        X = np.stack([(u - 16) / 30 * d, (v - 16) / 30 * d, d], -1)
        du = np.concatenate([np.diff(X, axis=1), np.diff(X, axis=1)[:, -1:]], 1)
        dv = np.concatenate([np.diff(X, axis=0), np.diff(X, axis=0)[-1:]], 0)
        n = np.cross(dv, du)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    want = np.mean([np.mean((np_normals(x) - np_normals(y)) ** 2) for x, y in zip(a, b)])
    assert abs(float(mse_v(a, b, K)) - want) < 1e-12
    assert (
        abs(
            float(rmse_v(a, b, K))
            - np.mean([np.sqrt(np.mean((np_normals(x) - np_normals(y)) ** 2)) for x, y in zip(a, b)])
        )
        < 1e-12
    )


def test_msev_is_the_unclamped_three_light_render_mse():
    a, b = scenes()
    n1, _ = normals(a, K)
    n2, _ = normals(b, K)
    assert (
        torch.allclose(LIGHTS3 @ LIGHTS3.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
        and (LIGHTS3[:, 2] < 0).all()
    )
    r = ((render(n1, LIGHTS3.double(), clamp=False) - render(n2, LIGHTS3.double(), clamp=False)) ** 2).mean()
    assert abs(float(r) - float(mse_v(a, b, K))) < 1e-12
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))  # any orthonormal triple
    r = ((render(n1, Q, clamp=False) - render(n2, Q, clamp=False)) ** 2).mean()
    assert abs(float(r) - float(mse_v(a, b, K))) < 1e-12
    # clamped renders break the identity (they are for viewing)
    rc = ((render(n1, Q) - render(n2, Q)) ** 2).mean()
    assert abs(float(rc) - float(mse_v(a, b, K))) > 1e-4
    assert render(n1, LIGHTS4.double()).min() >= 0


def test_msev_mask_and_invalid_pixels():
    a, b = scenes()
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    mask[:, :10, :10] = True
    per = mse_v(a, b, K, reduction="none")
    ok = mask.clone()
    ok[:, 9, :] = ok[:, :, 9] = True  # pixels whose normal uses no masked-out depth: rows/cols < 9
    want = per[:, :10, :10].mean()
    assert abs(float(mse_v(a, b, K, mask=mask)) - float(want)) < 1e-12
    b2 = b.clone()
    b2[:, 20:, 20:] = 0  # holes: left out, finite
    assert torch.isfinite(mse_v(a, b2, K))
