import numpy as np
import torch

from def3d import annotate, box, curve_metrics, cylinder, extract_curves, true_corners


def test_cube_gives_8_corners_and_12_edges_within_2r():
    r = 0.02
    s = box(1.0)
    p, _, lab = s.sample(int(s.area / r**2), torch.Generator().manual_seed(0))
    d = annotate(p, lab, s)
    c = extract_curves(p.numpy(), d.numpy(), r)
    assert len(c.corners) == 8 and len(c.polylines) == 12
    assert all(-1 not in e for e in c.ends)  # every edge ends at two corners
    m = curve_metrics(c.polylines, c.corners, s.edges, true_corners(s.edges), r / 2)
    assert m["hausdorff"] < 2 * r
    # corners near the true ones, written independently: the 8 points (+-1/2)^3
    tc = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    assert np.linalg.norm(c.corners[:, None] - tc[None], axis=-1).min(1).max() < 2 * r


def test_cylinder_gives_two_closed_circles(tmp_path):
    r = 0.04
    s = cylinder(0.6, 1.0)
    p, _, lab = s.sample(int(s.area / r**2), torch.Generator().manual_seed(1))
    c = extract_curves(p.numpy(), annotate(p, lab, s).numpy(), r)
    assert len(c.corners) == 0 and len(c.polylines) == 2 and all(c.closed)
    radii = [np.linalg.norm(pl[:, :2], axis=1) for pl in c.polylines]
    assert all(abs(x.mean() - 0.6) < r for x in radii)
    obj = c.to_obj(tmp_path / "c.obj").read_text()
    assert obj.count("\nl ") + obj.startswith("l ") == 2
