import math

import torch

from depth_sr.camera import (
    Intrinsics,
    depth_to_disparity,
    discontinuities,
    disparity_to_depth,
    normals,
    points,
)

K = Intrinsics(40.0, 44.0, 15.5, 12.0, baseline=0.1)


def plane_depth(n, c, H=24, W=32, K=K):
    """z-depth of the plane n . X = c through the pixel centres (an independent closed form)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                          indexing="ij")  # fmt: skip
    ray = torch.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, torch.ones_like(u)], -1)
    return c / (ray @ n)


def test_plane_normals_match_the_analytic_tilt():
    n = torch.tensor([0.3, -0.4, -1.0], dtype=torch.float64)
    n = n / n.norm()
    d = plane_depth(n, -3.0)
    est, ok = normals(d, K)
    assert ok.all()
    assert (est[1:-1, 1:-1] - n).abs().max() < 1e-4  # interior (the whole map, in fact: a plane)
    assert est[..., 2].max() < 0  # facing the camera


def test_normals_invariant_to_depth_scale_and_orthographic_lifting():
    d = 2 + torch.rand(12, 14, dtype=torch.float64)
    n1, _ = normals(d, K)
    n2, _ = normals(7.5 * d, K)
    assert (n1 - n2).abs().max() < 1e-12
    # orthographic: a depth ramp z = a x' with x' = (u + 0.5 - cx)/fx has normal ~ (a, 0, -1)
    u = (torch.arange(14, dtype=torch.float64) + 0.5 - K.cx) / K.fx
    d = (3 + 0.5 * u).expand(12, 14)
    n, _ = normals(d, K, "orthographic")
    want = torch.tensor([0.5, 0.0, -1.0], dtype=torch.float64) / math.sqrt(1.25)
    assert (n - want).abs().max() < 1e-12


def test_disparity_depth_round_trip_and_lifting():
    z = 1 + 4 * torch.rand(10, 10, dtype=torch.float64)
    disp = depth_to_disparity(z, K)
    assert torch.allclose(disp, K.fx * K.baseline / z)
    assert torch.allclose(disparity_to_depth(disp, K), z)
    assert torch.allclose(points(disp, K, "disparity"), points(z, K))
    X = points(z, K)
    assert torch.allclose(
        X[3, 5], z[3, 5] * torch.tensor([(5.5 - K.cx) / K.fx, (3.5 - K.cy) / K.fy, 1.0], dtype=torch.float64)
    )
    assert torch.isnan(disparity_to_depth(torch.zeros(2, 2), K)).all()


def test_gradients_finite_at_discontinuities_and_holes():
    from depth_sr.visual import mse_v

    d = torch.full((16, 16), 3.0, dtype=torch.float64)
    d[:, 8:] = 9.0  # a step
    d[2, 2], d[5, 5], d[7, 1] = 0.0, math.nan, -1.0  # holes
    gt = d.clone()
    gt[:, :8] += 0.01 * torch.arange(8, dtype=torch.float64)
    pred = d.clone().requires_grad_(True)
    loss = mse_v(pred, torch.nan_to_num(gt, nan=0.0), K)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert pred.grad[5, 5] == 0 and pred.grad[2, 2] == 0  # holes get no gradient
    edge = discontinuities(torch.nan_to_num(d, nan=0.0), band=1)
    assert edge[0, 7] and edge[0, 8] and edge[0, 6] and not edge[0, 4] and not edge[12, 3]
