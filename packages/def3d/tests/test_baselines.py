import numpy as np
import torch

from def3d import PCABaseline, box, dihedral_edges, surface_variation


def test_surface_variation_is_zero_on_a_plane_and_positive_at_a_crease():
    g = torch.Generator().manual_seed(0)
    plane = torch.cat([torch.rand(400, 2, generator=g), torch.zeros(400, 1)], 1)
    assert float(surface_variation(plane, 16).max()) < 1e-6
    s = box(1.0)
    p, _, _ = s.sample(6000, g)
    sv = surface_variation(p, 16)
    edge = (p.abs() > 0.47).sum(1) >= 2
    assert float(sv[edge].mean()) > 10 * float(sv[~edge].median() + 1e-6)


def test_pca_baseline_threshold_is_fitted_and_gives_a_clipped_distance_field():
    s = box(1.0)
    p, _, lab = s.sample(3000, torch.Generator().manual_seed(0))
    from def3d import annotate

    d = annotate(p, lab, s, upper=0.3) / 0.3
    b = PCABaseline(k=16, upper=1.0).fit(p[None] / 0.3, d[None])
    pred = b.predict(p / 0.3)
    assert b.threshold_ in list(b.thresholds) and pred.max() <= 1
    assert float((pred - d).pow(2).mean().sqrt()) < float((torch.ones_like(d) - d).pow(2).mean().sqrt())


def test_dihedral_edges_of_a_box_mesh_are_its_12_edges():
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_box(1, 1, 1)
    e = dihedral_edges(np.asarray(m.vertices), np.asarray(m.triangles))
    assert len(e) == 12
    assert abs(sum(x.length() for x in e) - 12) < 1e-9
