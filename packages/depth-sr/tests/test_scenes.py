import torch

from depth_sr.camera import Intrinsics, normals
from depth_sr.scenes import area_downsample, make_lr, mesh_scene, pixel_rays, synthetic_scene


def test_ray_cast_depth_and_normals_of_a_sphere():
    from papercore.geometry import Sphere

    K = Intrinsics(20.0, 20.0, 8.0, 8.0)
    d = pixel_rays(16, 16, K)
    hit = Sphere(1.0).transformed(translation=[0.0, 0.0, 4.0]).intersect(torch.zeros_like(d), d)
    # independent: the ray x = t d meets |x - c| = 1 at t = (d.c - sqrt((d.c)^2 - |d|^2 (|c|^2 - 1))) / |d|^2
    c = torch.tensor([0, 0, 4.0], dtype=torch.float64)
    dc, dd = d @ c, (d * d).sum(1)
    t = (dc - torch.sqrt(dc**2 - dd * 15)) / dd
    assert torch.allclose(hit.t[hit.hit], t[hit.hit]) and hit.hit[8 * 16 + 8]


def test_scene_is_deterministic_with_exact_normals_on_flat_regions():
    s = synthetic_scene(3, 48)
    assert torch.equal(s.depth, synthetic_scene(3, 48).depth) and not torch.equal(
        s.depth, synthetic_scene(4, 48).depth
    )
    assert (s.depth > 0).all() and s.rgb.shape == (3, 48, 48) and s.rgb.min() >= 0 and s.rgb.max() <= 1
    est, ok = normals(s.depth.double(), s.K)
    agree = ((est - s.normals.double()).norm(dim=-1) < 1e-3) & ok
    assert agree.float().mean() > 0.5  # flat regions: forward differences are exact there


def test_area_downsample_and_noise():
    d = 1 + torch.rand(8, 12)
    want = d.reshape(2, 4, 3, 4).mean((1, 3))
    assert torch.allclose(area_downsample(d, 4), want)
    d[:4, :4] = 0
    d[4, 0] = float("nan")
    lr = area_downsample(d, 4)
    assert lr[0, 0] == 0 and torch.isclose(lr[1, 0], torch.nan_to_num(d[4:, :4]).sum() / 15)
    g = torch.Generator().manual_seed(0)
    noisy = make_lr(d, 4, noise=0.01, generator=g)
    assert noisy[0, 0] == 0 and (noisy - lr).abs().max() > 0


def test_mesh_scene_through_open3d(tmp_path):
    from papercore.geometry.io import write_mesh

    v = torch.tensor(
        [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
        dtype=torch.float64,
    )
    f = torch.tensor(
        [
            [0, 2, 1],
            [0, 3, 2],
            [4, 5, 6],
            [4, 6, 7],
            [0, 1, 5],
            [0, 5, 4],
            [2, 3, 7],
            [2, 7, 6],
            [1, 2, 6],
            [1, 6, 5],
            [0, 4, 7],
            [0, 7, 3],
        ]
    )
    write_mesh(tmp_path / "cube.ply", v, f)
    s = mesh_scene(tmp_path / "cube.ply", 32)
    assert (s.depth > 0).all() and s.depth.min() > 1 and s.depth.max() < 6
    assert torch.allclose(s.normals.norm(dim=-1), torch.ones(32, 32), atol=1e-5)
