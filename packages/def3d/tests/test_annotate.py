import math

import numpy as np
import pytest
import torch

from def3d import annotate, box, def_scale, random_cad
from def3d.cad import CADShape, Part
from papercore.geometry import Extrusion, random_rotation


def _cube_edge_distance(p: np.ndarray) -> np.ndarray:
    """Min distance to the 12 edges of [-1/2, 1/2]^3, written independently: an edge along axis a at
    (s_b/2, s_c/2) is at distance sqrt((p_b - s_b/2)^2 + (p_c - s_c/2)^2) once p_a is clipped to the edge."""
    best = np.full(len(p), np.inf)
    for a in range(3):
        b, c = [x for x in range(3) if x != a]
        along = np.clip(p[:, a], -0.5, 0.5) - p[:, a]
        for sb in (-0.5, 0.5):
            for sc in (-0.5, 0.5):
                best = np.minimum(best, np.sqrt(along**2 + (p[:, b] - sb) ** 2 + (p[:, c] - sc) ** 2))
    return best


def test_unit_cube_matches_the_analytic_edge_distance():
    s = box(1.0)
    p, _, lab = s.sample(3000, torch.Generator().manual_seed(0))
    for rule in ("surface", "global"):
        d = annotate(p, lab, s, rule=rule, upper=10.0).numpy()
        assert np.abs(d - _cube_edge_distance(p.numpy())).max() < 1e-6


def test_clipping_and_flat_patches_give_the_upper_bound():
    s = box((20.0, 20.0, 1.0))  # a big plate: its face centres are far from every edge
    p = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5], [9.9, 0.0, 0.5]], dtype=torch.float64)
    lab = torch.tensor([5, 4, 5])
    d = annotate(p, lab, s, upper=1.0)
    assert d.tolist() == pytest.approx([1.0, 1.0, 0.1])
    # a patch with no sharp curve (here: a surface id no curve bounds) is all upper bound
    assert annotate(p[:1], torch.tensor([99]), s, upper=0.7).item() == 0.7


def test_invariant_to_rigid_motion_and_scales_with_the_shape():
    s = random_cad("T", 3)
    p, _, lab = s.sample(2000, torch.Generator().manual_seed(1))
    d = annotate(p, lab, s, upper=100.0)
    R = random_rotation(torch.Generator().manual_seed(5))
    t = torch.tensor([0.3, -2.0, 5.0], dtype=torch.float64)
    moved = s.transformed(R=R, t=t)
    assert torch.allclose(annotate(p @ R.T + t, lab, moved, upper=100.0), d, atol=1e-9)
    big = s.transformed(scale=2.5)
    assert torch.allclose(annotate(2.5 * p, lab, big, upper=100.0), 2.5 * d, atol=1e-9)


def test_same_surface_rule_differs_from_global_on_a_thin_wall():
    # a stepped plate profile in xz (extruded along y): the step's corner edge at (1, t) is t away from the
    # bottom face through the material, but it does not bound the bottom face
    t = 0.05
    poly = np.array([[0, 0], [2, 0], [2, 2 * t], [1, 2 * t], [1, t], [0, t]])
    R = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)  # profile xy -> xz
    s = CADShape([Part(Extrusion(poly, 4.0), R, torch.zeros(3, dtype=torch.float64))])
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # on the bottom face below the step
    hit = s.intersect(torch.tensor([[1.0, 0.0, -5.0]]), torch.tensor([[0.0, 0.0, 1.0]]))
    lab = hit[3]
    assert torch.allclose(hit[1], p)
    assert annotate(p, lab, s, rule="global", upper=10.0).item() == pytest.approx(t)
    assert annotate(p, lab, s, rule="surface", upper=10.0).item() == pytest.approx(1.0)  # the ends x = 0, 2


def test_def_scale_puts_the_quarter_quantile_of_curve_lengths_at_one():
    s = random_cad("L", 0)
    k = def_scale(s)
    assert np.quantile(s.transformed(scale=k).curve_lengths(), 0.25) == pytest.approx(1.0)
    assert math.isfinite(k) and k > 0
