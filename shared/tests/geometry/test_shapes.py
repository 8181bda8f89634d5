import math

import pytest
import torch
from scipy.integrate import quad

from papercore.geometry import shapes as S
from papercore.geometry.edges import distance_to_edges, sample_edges

D = 1e-5


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", S.CLASSES)
def test_samples_lie_on_the_surface_with_outward_normals(name):
    g = _gen(1)
    shape = S.random_shape(name, g, rotation="so3")
    p, n = shape.sample(2000, g, normals=True, dtype=torch.float64)
    assert p.shape == (2000, 3) and torch.allclose(n.norm(dim=1), torch.ones(2000, dtype=torch.float64))
    assert shape.contains(p - D * n).all(), "a step inward along the normal must enter the solid"
    assert not shape.contains(p + D * n).any(), "a step outward must leave it"


@pytest.mark.parametrize("name", S.CLASSES)
def test_rays_hit_the_surface_first_and_misses_never_enter(name):
    g = _gen(2)
    shape = S.random_shape(name, g, rotation="so3")
    o = torch.randn(600, 3, generator=g, dtype=torch.float64)
    o = 3 * o / o.norm(dim=1, keepdim=True)
    d = torch.randn(600, 3, generator=g, dtype=torch.float64) * 0.6 - o
    hit = shape.intersect(o, d)
    assert hit.hit.sum() > 50 and (~hit.hit).sum() > 10
    p, n = hit.points[hit.hit], hit.normals[hit.hit]
    assert shape.contains(p - D * n).all() and not shape.contains(p + D * n).any()
    s = torch.linspace(0, 1, 400, dtype=torch.float64)[:-1]
    t = torch.where(hit.hit, hit.t, torch.full_like(hit.t, 2.0))  # misses: walk twice past the target
    along = o[:, None] + (s[None, :, None] * t[:, None, None]) * d[:, None]
    assert not shape.contains(along.reshape(-1, 3)).any(), "no point before the first hit is inside"


def test_rays_closed_forms():
    o = torch.tensor([[0.0, 0, -3], [-3.0, 0, 0], [-3.0, 0.5, 0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0, 2], [1.0, 0, 0], [1.0, 0, 0]], dtype=torch.float64)
    assert S.Sphere(1.0).intersect(o[:1], d[:1]).t.item() == pytest.approx(1.0)  # |d| = 2: t in its units
    torus = S.Torus(0.7, 0.2)
    t = torus.intersect(o[1:], d[1:]).t
    assert t[0].item() == pytest.approx(3 - 0.9, abs=1e-12)
    # y = 0.5 cuts the tube: (sqrt(x^2 + 0.25) - 0.7)^2 = 0.04 -> x = -sqrt(0.9^2 - 0.25)
    assert t[1].item() == pytest.approx(3 - math.sqrt(0.81 - 0.25), abs=1e-12)
    box = S.Box((1, 2, 3)).transformed(scale=(2, 1, 1), translation=(1, 0, 0))
    h = box.intersect(torch.tensor([[5.0, 0, 0]]), torch.tensor([[-1.0, 0, 0]]))
    assert h.t.item() == pytest.approx(3.0) and torch.allclose(
        h.normals, torch.tensor([[1.0, 0, 0]], dtype=torch.float64)
    )


def test_area_closed_forms_and_face_fractions():
    g = _gen(3)
    cyl = S.Cylinder(0.5, 2.0)
    assert cyl.area == pytest.approx(2 * math.pi * 0.5 * 2 + 2 * math.pi * 0.25)
    p = cyl.sample(40_000, g, dtype=torch.float64)
    side = (p[:, 2].abs() < 1 - 1e-9).double().mean().item()
    assert side == pytest.approx(2 / 2.5, abs=0.01)
    R, r = 0.7, 0.3
    q = S.Torus(R, r).sample(40_000, g, dtype=torch.float64)
    outer = (q[:, :2].norm(dim=1) > R).double().mean().item()
    assert outer == pytest.approx((math.pi * R + 2 * r) / (2 * math.pi * R), abs=0.01)
    cone = S.Cone(0.6, 1.0)
    c = cone.sample(40_000, g, dtype=torch.float64)
    # the lower half of the side holds (3/4) of the side's area (radius 0.6 -> 0.3 over it)
    side = c[:, 2] > -0.5 + 1e-9
    low = (c[side, 2] < 0).double().mean().item()
    assert low == pytest.approx(0.75, abs=0.01)
    assert S.Box((1, 2, 3)).area == 22.0 and S.Torus(R, r).area == pytest.approx(4 * math.pi**2 * R * r)


def test_anisotropic_scale_is_area_uniform():
    """A spheroid (sphere scaled by (1, 1, 0.4)): the fraction of its area above z = 0.2, by quadrature."""
    c = 0.4
    shape = S.Sphere(1.0).transformed(scale=(1, 1, c))
    p = shape.sample(60_000, _gen(4), dtype=torch.float64)

    def ring(z):  # dA = 2 pi rho(z) sqrt(1 + rho'(z)^2) dz, rho = sqrt(1 - z^2/c^2)
        rho = math.sqrt(max(1 - z * z / c**2, 1e-300))
        drho = -z / (c**2 * rho)
        return 2 * math.pi * rho * math.sqrt(1 + drho**2)

    total = 2 * quad(ring, 0, c, limit=200)[0]
    above = quad(ring, 0.2, c, limit=200)[0]
    assert (p[:, 2] > 0.2).double().mean().item() == pytest.approx(above / total, abs=0.006)


@pytest.mark.parametrize("name", ["box", "cylinder", "cone", "extrusion", "table", "chair", "lamp", "mug"])
def test_edges_are_sharp_creases_of_the_surface(name):
    """A tiny ball about a crease point is inside the solid for a fraction far from 1/2 (1/4 for a right-angled
    convex edge); about a smooth surface point it is 1/2."""
    g = _gen(5)
    shape = S.random_shape(name, g, rotation="so3")
    edges = shape.edges()
    q = sample_edges(edges, 300, g, dtype=torch.float64)
    assert distance_to_edges(q, edges).max() < 1e-9
    u = torch.randn(300, 256, 3, generator=g, dtype=torch.float64)
    u = 1e-6 * u / u.norm(dim=-1, keepdim=True)
    frac = shape.contains((q[:, None] + u).reshape(-1, 3)).reshape(300, 256).double().mean(1)
    assert (frac > 0.02).all() and (frac < 0.98).all(), "edge points lie on the surface"
    assert (frac - 0.5).abs().median() > 0.12
    p = shape.sample(300, g, dtype=torch.float64)
    p = p[distance_to_edges(p, edges) > 1e-4]
    fs = shape.contains((p[:, None] + u[: len(p)]).reshape(-1, 3)).reshape(len(p), 256).double().mean(1)
    assert (fs - 0.5).abs().median() < 0.06


def test_edges_follow_transforms_and_lengths():
    box = S.Box((1, 2, 3))
    assert sum(e.length() for e in box.edges()) == pytest.approx(4 * 6)
    R = S.random_rotation(_gen(6))
    t = S.Transformed(
        box,
        R @ torch.diag(torch.tensor([2.0, 1, 0.5], dtype=torch.float64)),
        torch.tensor([1.0, 2, 3]).double(),
    )
    q = sample_edges(box.edges(), 200, _gen(7), dtype=torch.float64)
    moved = q @ t.A.T + t.b
    assert distance_to_edges(moved, t.edges()).max() < 1e-12
    cyl = S.Cylinder(0.5, 1.0).transformed(scale=(2, 1, 1))
    # the cap circles become ellipses with semi-axes 1 and 0.5: Ramanujan's perimeter
    a, b = 1.0, 0.5
    h = (a - b) ** 2 / (a + b) ** 2
    per = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    assert cyl.edges()[0].length() == pytest.approx(per, rel=1e-6)


def test_random_shapes_are_seeded_and_normalised():
    a = S.sample_shapes("mug", 3, 512, seed=4)
    b, shapes = S.sample_shapes("mug", 3, 512, seed=4, return_shapes=True)
    assert torch.equal(a, b) and a.shape == (3, 512, 3) and a.dtype == torch.float32
    assert torch.allclose(a.norm(dim=-1).amax(1), torch.full((3,), 0.5), atol=1e-6)
    assert not torch.equal(a, S.sample_shapes("mug", 3, 512, seed=5))
    # the returned shapes are the normalised ground truth of these clouds
    p, n = shapes[0].sample(500, _gen(8), normals=True, dtype=torch.float64)
    assert shapes[0].contains(p - D * n).all() and p.norm(dim=1).max() < 0.5 + 1e-3
    near = torch.cdist(a[0].double(), p).amin(0)
    assert near.max() < 0.1


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="legs must fit"):
        S.table(leg_radius=0.2, inset=0.1)
    with pytest.raises(ValueError, match="unknown shape class"):
        S.random_shape("teapot")
    with pytest.raises(ValueError, match="inner < outer"):
        S.Tube(0.3, 0.4)
