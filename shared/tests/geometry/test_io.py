import numpy as np
import pytest
import torch

from papercore.geometry import io
from papercore.geometry.shapes import Box

o3d = pytest.importorskip("open3d")


def _box_mesh(size=(1.0, 2.0, 3.0)):
    m = o3d.geometry.TriangleMesh.create_box(*size)
    v = np.asarray(m.vertices) - np.asarray(size) / 2  # centred, like shapes.Box
    return io.Mesh(v, np.asarray(m.triangles, dtype=np.int64))


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".off"])
def test_mesh_round_trip(tmp_path, suffix):
    mesh = _box_mesh()
    path = io.write_mesh(tmp_path / f"box{suffix}", mesh.vertices, mesh.faces)
    back = io.read_mesh(path)
    assert len(back.faces) == 12 and back.area == pytest.approx(mesh.area) == pytest.approx(22.0)


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".xyz", ".npy"])
def test_cloud_round_trip_and_subsampling(tmp_path, suffix):
    p = torch.rand(100, 3, generator=torch.Generator().manual_seed(0))
    io.write_cloud(tmp_path / f"c{suffix}", p)
    back = io.read_cloud(tmp_path / f"c{suffix}")
    assert torch.allclose(back, p, atol=1e-6)
    sub = io.read_cloud(tmp_path / f"c{suffix}", 40, seed=1)
    assert sub.shape == (40, 3) and (sub[:, None] - p[None]).norm(dim=-1).amin(1).max() < 1e-6
    with pytest.raises(ValueError, match="fewer than the 200 needed"):
        io.read_cloud(tmp_path / f"c{suffix}", 200)


def test_bad_files(tmp_path):
    cloud = tmp_path / "cloud.ply"
    io.write_cloud(cloud, torch.rand(10, 3))
    with pytest.raises(ValueError, match="has no faces"):
        io.read_mesh(cloud)
    nan = tmp_path / "nan.xyz"
    nan.write_text("0 0 0\nnan 1 2\n")
    with pytest.raises(ValueError, match="NaN"):
        io.read_cloud(nan)
    with pytest.raises(FileNotFoundError):
        io.read_cloud(tmp_path / "missing.ply")
    with pytest.raises(ValueError, match="pass the number of points"):
        mesh = _box_mesh()
        io.read_cloud(io.write_mesh(tmp_path / "m.obj", mesh.vertices, mesh.faces))


def test_mesh_sampling_is_area_weighted_and_poisson_gives_n():
    p = io.sample_mesh(_box_mesh(), 30_000, "uniform", seed=0).double()
    h = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
    on = (p.abs() - h).abs() < 1e-6  # which face each point is on
    frac = on.double().mean(0)  # faces of area 6, 3, 2 (pairs): 12/22, 6/22, 4/22 of the points
    assert frac[0].item() == pytest.approx(2 * 6 / 22, abs=0.01)  # x-faces: 2 x 3 each
    assert frac[2].item() == pytest.approx(2 * 2 / 22, abs=0.01)  # z-faces: 1 x 2 each
    q, n = io.sample_mesh(_box_mesh(), 300, "poisson", normals=True, seed=0)
    assert q.shape == (300, 3) and torch.allclose(n.norm(dim=1), torch.ones(300), atol=1e-5)


def test_raycast_agrees_with_the_analytic_box():
    g = torch.Generator().manual_seed(0)
    o = torch.randn(500, 3, generator=g, dtype=torch.float64)
    o = 5 * o / o.norm(dim=1, keepdim=True)
    d = torch.randn(500, 3, generator=g, dtype=torch.float64) - o
    t, n, hit = io.raycast(_box_mesh(), o, d)
    ref = Box((1.0, 2.0, 3.0)).intersect(o, d)
    assert torch.equal(hit, ref.hit) and ref.hit.sum() > 100
    assert torch.allclose(t[hit], ref.t[hit], rtol=1e-5)
    assert torch.allclose(n[hit], ref.normals[hit], atol=1e-5)


def test_kdtree_and_normals():
    g = torch.Generator().manual_seed(1)
    p = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    p = p / p.norm(dim=1, keepdim=True)
    d, i = io.KDTree(p).query(p[:10] * 1.01, k=3)
    ref = torch.cdist(p[:10] * 1.01, p).topk(3, largest=False)
    assert torch.equal(i, ref.indices) and torch.allclose(d, ref.values)
    n = io.estimate_normals(p, k=20).double()
    assert ((n * p).sum(1) > 0.99).all()  # radial and outward


def test_load_folder(tmp_path):
    mesh = _box_mesh()
    io.write_mesh(tmp_path / "a.obj", mesh.vertices, mesh.faces)
    io.write_cloud(tmp_path / "b.npy", torch.rand(300, 3))
    (tmp_path / "notes.md").write_text("ignored")
    clouds, names = io.load_folder(tmp_path, 256)
    assert clouds.shape == (2, 256, 3) and names == ["a.obj", "b.npy"]
    io.write_cloud(tmp_path / "c.xyz", torch.rand(10, 3))
    with pytest.raises(ValueError, match="c.xyz: 10 points, fewer than the 256 needed"):
        io.load_folder(tmp_path, 256)
