r"""Analytic shapes with exact ground truth, in torch (CPU or GPU, float64 inside).

Every :class:`Shape` is a closed solid with

* ``sample(n)``: points **exactly uniform by area** on its surface (and unit outward normals):
  primitives sample each face in closed form (the torus by rejection on
  :math:`R + r\cos\theta`, a cone's side with a radius density :math:`\propto\rho`), an affine image
  :math:`x \mapsto Ax + b` by rejection with acceptance :math:`\sigma_{\min}(A)\,\|A^{-\top}n\|`
  (the area element scales by :math:`|\det A|\,\|A^{-\top}n\|`), a union by choosing parts by area
  and rejecting the points strictly inside another part (what remains is the union's boundary);
* ``intersect(origins, directions)``: the first hit of each ray (``t``, point, outward normal):
  quadratics for spheres, cylinders and cones, slabs for boxes, the quartic of the torus by the
  eigenvalues of its companion matrix polished by Newton steps; a union's first hit, for a ray
  starting outside it, is the nearest first hit over its parts;
* ``contains(points)``: strictly inside the solid;
* ``edges()``: its sharp edges as exact :mod:`~papercore.geometry.edges` curves;
* ``area``: exact for primitives and their rigid (or uniformly scaled) placements.

Primitives are centred on the origin with z up: :class:`Sphere`, :class:`Box`, :class:`Cylinder`,
:class:`Cone` (a frustum with ``top_radius > 0``), :class:`Tube` (a thick-walled open cylinder),
:class:`Torus`, :class:`Extrusion` (a prism over a simple polygon). Composites are
:class:`Union` s of rigidly placed parts whose contacts are penetrations (never coplanar faces),
with their edges, junction curves included, listed exactly: :func:`table`, :func:`mug`,
:func:`lamp`, :func:`chair`. :func:`random_shape` draws a member of a class with random
parameters, an anisotropic scale and a rotation; :func:`sample_shapes` turns a class into a data
set of clouds normalised into the ball of radius 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from papercore.geometry.edges import Arc, Edge, Polyline, Segment
from papercore.geometry.transforms import normalize_unit_ball, random_rotation, rotation_about, uniform

__all__ = [
    "CLASSES",
    "Box",
    "Cone",
    "Cylinder",
    "Extrusion",
    "RayHit",
    "Shape",
    "Sphere",
    "Torus",
    "Transformed",
    "Tube",
    "Union",
    "chair",
    "lamp",
    "mug",
    "random_shape",
    "regular_polygon",
    "sample_shapes",
    "star_polygon",
    "table",
]

F64 = torch.float64
TOL = 1e-9  # "strictly inside" margin and the smallest ray parameter


def _f(x, device) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64, device=device)


def _dev(generator, device):
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def _disk(n: int, radius, g, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform points in a disk: (x, y)."""
    r = radius * torch.sqrt(uniform(n, generator=g, device=dev))
    a = uniform(n, 0, 2 * math.pi, g, dev)
    return r * torch.cos(a), r * torch.sin(a)


def _annulus(n: int, inner, outer, g, dev) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.sqrt(inner**2 + (outer**2 - inner**2) * uniform(n, generator=g, device=dev))
    a = uniform(n, 0, 2 * math.pi, g, dev)
    return r * torch.cos(a), r * torch.sin(a)


def _pick(weights: list[float], n: int, g, dev) -> torch.Tensor:
    return torch.multinomial(_f(weights, dev), n, replacement=True, generator=g)


def _first(cands: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest valid candidate per ray among ``(t, valid, normal)`` triples: ``(t or inf, normal)``."""
    ts = torch.stack([torch.where(v & (t > TOL), t, torch.full_like(t, math.inf)) for t, v, _ in cands], 1)
    best = ts.argmin(1)
    t = ts.gather(1, best[:, None])[:, 0]
    normals = torch.stack([n for _, _, n in cands], 1)
    return t, normals[torch.arange(len(t), device=t.device), best]


def _quadratic(a, b, c) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real roots (t1 <= t2) of a t² + 2 b t + c = 0 and a mask of rays that have them."""
    disc = b * b - a * c
    ok = disc >= 0
    sq = torch.sqrt(disc.clamp_min(0))
    lin = a.abs() < 1e-14
    # a stable form: q = -(b + sign(b) sqrt(disc)); roots q/a and c/q
    q = -(b + torch.where(b >= 0, sq, -sq))
    r1 = torch.where(lin, -c / (2 * b), q / torch.where(lin, torch.ones_like(a), a))
    r2 = torch.where(lin, r1, c / torch.where(q == 0, torch.full_like(q, 1e-300), q))
    return torch.minimum(r1, r2), torch.maximum(r1, r2), ok


@dataclass
class RayHit:
    """First hits of a batch of rays: ``t`` (inf on a miss), ``points``, unit ``normals``, ``hit``."""

    t: torch.Tensor
    points: torch.Tensor
    normals: torch.Tensor
    hit: torch.Tensor


class Shape:
    """A closed solid with an exactly known surface (see the module docstring)."""

    name = "shape"

    # -- what a shape implements, in float64 on the device of its inputs
    def _sample(self, n: int, g, dev) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def contains(self, points) -> torch.Tensor:
        """True for points strictly inside the solid (by more than 1e-9)."""
        raise NotImplementedError

    def edges(self) -> list[Edge]:
        """The sharp edges, as exact curves (empty for a smooth surface)."""
        return []

    @property
    def area(self) -> float:
        raise NotImplementedError

    # -- the public verbs
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        normals: bool = False,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        """``n`` points uniform by area on the surface, in random order (``[n, 3]``, and normals with ``normals=True``)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        dev = _dev(generator, device)
        p, nrm = self._sample(n, generator, dev)
        perm = torch.randperm(n, generator=generator, device=dev)
        p, nrm = p[perm].to(dtype), nrm[perm].to(dtype)
        return (p, nrm) if normals else p

    def intersect(self, origins, directions) -> RayHit:
        """First intersection of rays ``origins + t * directions`` (``[n, 3]`` each, t > 0)."""
        o = torch.as_tensor(origins, dtype=F64)
        d = torch.as_tensor(directions, dtype=F64, device=o.device)
        if o.shape != d.shape or o.ndim != 2 or o.shape[1] != 3:
            raise ValueError(
                f"origins and directions must both be [n, 3], got {tuple(o.shape)} and {tuple(d.shape)}"
            )
        t, nrm = self._intersect(o, d)
        hit = torch.isfinite(t)
        pts = torch.where(hit[:, None], o + t.clamp_max(1e300)[:, None] * d, torch.full_like(o, math.nan))
        nrm = torch.where(
            hit[:, None], nrm / nrm.norm(dim=1, keepdim=True).clamp_min(1e-300), torch.zeros_like(nrm)
        )
        return RayHit(t, pts, nrm, hit)

    def transformed(self, rotation=None, scale=None, translation=None) -> Transformed:
        """This shape under ``x -> R diag(scale) x + translation`` (scale: a number or 3 numbers)."""
        R = torch.eye(3, dtype=F64) if rotation is None else torch.as_tensor(rotation, dtype=F64).cpu()
        s = torch.ones(3, dtype=F64) if scale is None else torch.as_tensor(scale, dtype=F64).cpu().expand(3)
        b = (
            torch.zeros(3, dtype=F64)
            if translation is None
            else torch.as_tensor(translation, dtype=F64).cpu()
        )
        A = R @ torch.diag(s)
        if isinstance(self, Transformed):
            return Transformed(self.shape, A @ self.A, A @ self.b + b)
        return Transformed(self, A, b)

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if isinstance(v, float | int)}
        return f"{type(self).__name__}({', '.join(f'{k}={v:.4g}' for k, v in fields.items())})"


class Sphere(Shape):
    name = "sphere"

    def __init__(self, radius: float = 1.0):
        if radius <= 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        self.radius = float(radius)

    @property
    def area(self) -> float:
        return 4 * math.pi * self.radius**2

    def _sample(self, n, g, dev):
        u = torch.randn(n, 3, generator=g, device=dev, dtype=F64)
        u = u / u.norm(dim=1, keepdim=True)
        return self.radius * u, u

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        return p.norm(dim=-1) < self.radius - TOL

    def _intersect(self, o, d):
        t1, t2, ok = _quadratic((d * d).sum(1), (o * d).sum(1), (o * o).sum(1) - self.radius**2)
        cands = [(t, ok, o + t[:, None] * d) for t in (t1, t2)]
        return _first(cands)


class Box(Shape):
    """The box ``[-size/2, size/2]``."""

    name = "box"

    def __init__(self, size=(1.0, 1.0, 1.0)):
        self.size = tuple(float(s) for s in np.broadcast_to(np.asarray(size, dtype=float), (3,)))
        if min(self.size) <= 0:
            raise ValueError(f"box sizes must be > 0, got {self.size}")

    @property
    def area(self) -> float:
        a, b, c = self.size
        return 2 * (a * b + b * c + a * c)

    def _sample(self, n, g, dev):
        a, b, c = self.size
        face = _pick([b * c, b * c, a * c, a * c, a * b, a * b], n, g, dev)
        h = _f(self.size, dev) / 2
        p = (uniform((n, 3), generator=g, device=dev) * 2 - 1) * h
        axis, sign = face // 2, (face % 2) * 2 - 1
        rows = torch.arange(n, device=dev)
        p[rows, axis] = sign.to(F64) * h[axis]
        nrm = torch.zeros(n, 3, dtype=F64, device=dev)
        nrm[rows, axis] = sign.to(F64)
        return p, nrm

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        return (p.abs() < _f(self.size, p.device) / 2 - TOL).all(-1)

    def _intersect(self, o, d):
        h = _f(self.size, o.device) / 2
        with torch.no_grad():
            inv = 1 / d
        t1, t2 = (-h - o) * inv, (h - o) * inv
        t1, t2 = torch.nan_to_num(t1, nan=-math.inf), torch.nan_to_num(t2, nan=math.inf)
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        tn, an = lo.max(1)
        tf, af = hi.min(1)
        ok = (tn <= tf) & (tf > TOL)
        entry = tn > TOL
        t = torch.where(entry, tn, tf)
        axis = torch.where(entry, an, af)
        sgn = torch.sign(d.gather(1, axis[:, None]))[:, 0]
        sgn = torch.where(entry, -sgn, sgn)
        nrm = torch.zeros_like(o)
        nrm[torch.arange(len(o), device=o.device), axis] = sgn
        return torch.where(ok, t, torch.full_like(t, math.inf)), nrm

    def edges(self) -> list[Edge]:
        h = np.asarray(self.size) / 2
        out = []
        for axis in range(3):
            j, k = [a for a in range(3) if a != axis]
            for sj in (-1, 1):
                for sk in (-1, 1):
                    a, b = np.zeros(3), np.zeros(3)
                    a[j] = b[j] = sj * h[j]
                    a[k] = b[k] = sk * h[k]
                    a[axis], b[axis] = -h[axis], h[axis]
                    out.append(Segment(_f(a, "cpu"), _f(b, "cpu")))
        return out


class Cone(Shape):
    """A cone frustum about z: radius ``radius`` at ``z = -height/2``, ``top_radius`` at ``+height/2``
    (0: a cone with its apex up), both caps closed."""

    name = "cone"

    def __init__(self, radius: float = 0.5, height: float = 1.0, top_radius: float = 0.0):
        if radius < 0 or top_radius < 0 or max(radius, top_radius) <= 0 or height <= 0:
            raise ValueError("cone radii must be >= 0 (one > 0) and height > 0")
        self.radius, self.height, self.top_radius = float(radius), float(height), float(top_radius)

    def _slant(self) -> float:
        return math.hypot(self.height, self.radius - self.top_radius)

    @property
    def area(self) -> float:
        r0, r1 = self.radius, self.top_radius
        return math.pi * (r0 + r1) * self._slant() + math.pi * (r0**2 + r1**2)

    def _sample(self, n, g, dev):
        r0, r1, h = self.radius, self.top_radius, self.height
        part = _pick([math.pi * (r0 + r1) * self._slant(), math.pi * r0**2, math.pi * r1**2], n, g, dev)
        p = torch.empty(n, 3, dtype=F64, device=dev)
        nrm = torch.zeros(n, 3, dtype=F64, device=dev)
        side = part == 0
        m = int(side.sum())
        if m:
            if abs(r0 - r1) < 1e-15:
                rho = torch.full((m,), r0, dtype=F64, device=dev)
                z = uniform(m, -h / 2, h / 2, g, dev)
            else:  # area density along the side is proportional to the radius
                lo, hi = min(r0, r1), max(r0, r1)
                rho = torch.sqrt(lo**2 + (hi**2 - lo**2) * uniform(m, generator=g, device=dev))
                z = -h / 2 + h * (rho - r0) / (r1 - r0)
            a = uniform(m, 0, 2 * math.pi, g, dev)
            p[side] = torch.stack([rho * torch.cos(a), rho * torch.sin(a), z], 1)
            k = (r0 - r1) / h
            nn = torch.stack([torch.cos(a), torch.sin(a), torch.full_like(a, k)], 1)
            nrm[side] = nn / nn.norm(dim=1, keepdim=True)
        for idx, r, z, s in ((1, r0, -h / 2, -1.0), (2, r1, h / 2, 1.0)):
            sel = part == idx
            m = int(sel.sum())
            if m:
                x, y = _disk(m, r, g, dev)
                p[sel] = torch.stack([x, y, torch.full_like(x, z)], 1)
                nrm[sel, 2] = s
        return p, nrm

    def _rho(self, z):
        return self.radius + (self.top_radius - self.radius) * (z + self.height / 2) / self.height

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        z = p[..., 2]
        return (z.abs() < self.height / 2 - TOL) & (p[..., :2].norm(dim=-1) < self._rho(z) - TOL)

    def _intersect(self, o, d):
        h, r0, r1 = self.height, self.radius, self.top_radius
        b_ = (r1 - r0) / h
        a_ = r0 + b_ * h / 2  # rho(z) = a_ + b_ z
        w = a_ + b_ * o[:, 2]
        A = d[:, 0] ** 2 + d[:, 1] ** 2 - b_**2 * d[:, 2] ** 2
        B = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1] - b_ * w * d[:, 2]
        C = o[:, 0] ** 2 + o[:, 1] ** 2 - w**2
        t1, t2, ok = _quadratic(A, B, C)
        cands = []
        for t in (t1, t2):
            p = o + t[:, None] * d
            valid = ok & (p[:, 2].abs() <= h / 2) & (a_ + b_ * p[:, 2] >= 0)
            nn = torch.cat([p[:, :2], (-b_ * (a_ + b_ * p[:, 2]))[:, None]], 1)
            cands.append((t, valid, nn))
        cands += _caps(o, d, [(-h / 2, 0.0, r0, -1.0), (h / 2, 0.0, r1, 1.0)])
        return _first(cands)

    def edges(self) -> list[Edge]:
        h = self.height / 2
        return [
            Arc.circle([0, 0, z], [0, 0, 1], r) for z, r in ((-h, self.radius), (h, self.top_radius)) if r > 0
        ]


def _caps(o, d, caps) -> list:
    """Ray candidates on horizontal annuli ``(z, inner, outer, normal_z)``."""
    out = []
    for z, inner, outer, s in caps:
        if outer <= 0:
            continue
        t = (z - o[:, 2]) / d[:, 2]
        p = o + t[:, None] * d
        rr = p[:, :2].norm(dim=1)
        nn = torch.zeros_like(o)
        nn[:, 2] = s
        out.append((torch.nan_to_num(t, nan=math.inf), (rr <= outer) & (rr >= inner), nn))
    return out


class Cylinder(Cone):
    """A closed cylinder about z, from ``-height/2`` to ``height/2``."""

    name = "cylinder"

    def __init__(self, radius: float = 0.5, height: float = 1.0):
        super().__init__(radius, height, radius)


class Tube(Shape):
    """A thick-walled open cylinder about z: radii ``inner < outer``, from ``-height/2`` to ``height/2``."""

    name = "tube"

    def __init__(self, outer: float = 0.5, inner: float = 0.4, height: float = 1.0):
        if not 0 < inner < outer or height <= 0:
            raise ValueError("a tube needs 0 < inner < outer and height > 0")
        self.outer, self.inner, self.height = float(outer), float(inner), float(height)

    @property
    def area(self) -> float:
        ro, ri, h = self.outer, self.inner, self.height
        return 2 * math.pi * (ro + ri) * h + 2 * math.pi * (ro**2 - ri**2)

    def _sample(self, n, g, dev):
        ro, ri, h = self.outer, self.inner, self.height
        ring = math.pi * (ro**2 - ri**2)
        part = _pick([2 * math.pi * ro * h, 2 * math.pi * ri * h, ring, ring], n, g, dev)
        p = torch.empty(n, 3, dtype=F64, device=dev)
        nrm = torch.zeros(n, 3, dtype=F64, device=dev)
        for idx, r, s in ((0, ro, 1.0), (1, ri, -1.0)):
            sel = part == idx
            m = int(sel.sum())
            if m:
                a = uniform(m, 0, 2 * math.pi, g, dev)
                p[sel] = torch.stack(
                    [r * torch.cos(a), r * torch.sin(a), uniform(m, -h / 2, h / 2, g, dev)], 1
                )
                nrm[sel] = s * torch.stack([torch.cos(a), torch.sin(a), torch.zeros_like(a)], 1)
        for idx, z, s in ((2, -h / 2, -1.0), (3, h / 2, 1.0)):
            sel = part == idx
            m = int(sel.sum())
            if m:
                x, y = _annulus(m, ri, ro, g, dev)
                p[sel] = torch.stack([x, y, torch.full_like(x, z)], 1)
                nrm[sel, 2] = s
        return p, nrm

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        r = p[..., :2].norm(dim=-1)
        return (p[..., 2].abs() < self.height / 2 - TOL) & (r < self.outer - TOL) & (r > self.inner + TOL)

    def _intersect(self, o, d):
        h = self.height
        cands = []
        A = d[:, 0] ** 2 + d[:, 1] ** 2
        B = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
        for r, s in ((self.outer, 1.0), (self.inner, -1.0)):
            t1, t2, ok = _quadratic(A, B, o[:, 0] ** 2 + o[:, 1] ** 2 - r**2)
            for t in (t1, t2):
                p = o + t[:, None] * d
                nn = s * torch.cat([p[:, :2], torch.zeros_like(t)[:, None]], 1)
                cands.append((t, ok & (p[:, 2].abs() <= h / 2), nn))
        cands += _caps(o, d, [(-h / 2, self.inner, self.outer, -1.0), (h / 2, self.inner, self.outer, 1.0)])
        return _first(cands)

    def edges(self) -> list[Edge]:
        h = self.height / 2
        return [Arc.circle([0, 0, z], [0, 0, 1], r) for z in (-h, h) for r in (self.outer, self.inner)]


class Torus(Shape):
    r"""The torus about z: :math:`(\sqrt{x^2+y^2} - R)^2 + z^2 = r^2`."""

    name = "torus"

    def __init__(self, major: float = 0.7, minor: float = 0.2):
        if not 0 < minor < major:
            raise ValueError(f"a torus needs 0 < minor < major, got {minor}, {major}")
        self.major, self.minor = float(major), float(minor)

    @property
    def area(self) -> float:
        return 4 * math.pi**2 * self.major * self.minor

    def _sample(self, n, g, dev):
        R, r = self.major, self.minor
        theta = torch.empty(0, dtype=F64, device=dev)
        while len(theta) < n:  # accept theta with probability (R + r cos theta) / (R + r)
            m = int((n - len(theta)) * (R + r) / R) + 16
            cand = uniform(m, 0, 2 * math.pi, g, dev)
            keep = uniform(m, generator=g, device=dev) * (R + r) < R + r * torch.cos(cand)
            theta = torch.cat([theta, cand[keep]])
        theta = theta[:n]
        phi = uniform(n, 0, 2 * math.pi, g, dev)
        rho = R + r * torch.cos(theta)
        p = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), r * torch.sin(theta)], 1)
        nrm = torch.stack(
            [torch.cos(theta) * torch.cos(phi), torch.cos(theta) * torch.sin(phi), torch.sin(theta)], 1
        )
        return p, nrm

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        return (p[..., :2].norm(dim=-1) - self.major) ** 2 + p[..., 2] ** 2 < (self.minor - TOL) ** 2

    def _intersect(self, o, d):
        R, r = self.major, self.minor
        scale = d.norm(dim=1, keepdim=True)
        u = d / scale  # unit directions: a better-conditioned quartic
        od = (o * u).sum(1)
        k = (o * o).sum(1) + R**2 - r**2
        uxy = u[:, 0] ** 2 + u[:, 1] ** 2
        oxy = o[:, 0] * u[:, 0] + o[:, 1] * u[:, 1]
        c3 = 4 * od
        c2 = 4 * od**2 + 2 * k - 4 * R**2 * uxy
        c1 = 4 * od * k - 8 * R**2 * oxy
        c0 = k**2 - 4 * R**2 * (o[:, 0] ** 2 + o[:, 1] ** 2)
        n = len(o)
        comp = torch.zeros(n, 4, 4, dtype=F64, device=o.device)
        comp[:, 0] = -torch.stack([c3, c2, c1, c0], 1)
        comp[:, 1, 0] = comp[:, 2, 1] = comp[:, 3, 2] = 1.0
        roots = torch.linalg.eigvals(comp)
        t = roots.real.clone()
        for _ in range(4):  # Newton polish on the real quartic
            f = (((t + c3[:, None]) * t + c2[:, None]) * t + c1[:, None]) * t + c0[:, None]
            df = ((4 * t + 3 * c3[:, None]) * t + 2 * c2[:, None]) * t + c1[:, None]
            t = t - torch.where(df.abs() > 1e-300, f / df, torch.zeros_like(f))
        p = o[:, None] + t[..., None] * u[:, None]
        resid = ((p[..., :2].norm(dim=-1) - R) ** 2 + p[..., 2] ** 2 - r**2).abs()
        valid = (resid < 1e-7 * (R + r) ** 2) & (roots.imag.abs() < 1e-3 * (1 + roots.real.abs()))
        rho = p[..., :2].norm(dim=-1, keepdim=True).clamp_min(1e-300)
        nn = torch.cat([p[..., :2] * (1 - R / rho), p[..., 2:]], -1)
        cands = [(t[:, i] / scale[:, 0], valid[:, i], nn[:, i]) for i in range(4)]
        return _first(cands)


def regular_polygon(k: int, radius: float = 1.0) -> np.ndarray:
    """The vertices ``[k, 2]`` (counter-clockwise) of a regular ``k``-gon."""
    a = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(a), np.sin(a)], 1)


def star_polygon(k: int, inner: float = 0.5, radius: float = 1.0) -> np.ndarray:
    """A ``k``-pointed star ``[2k, 2]`` (counter-clockwise), inner vertices at ``inner * radius``."""
    a = np.pi * np.arange(2 * k) / k
    r = np.where(np.arange(2 * k) % 2 == 0, radius, inner * radius)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _signed_area(P: np.ndarray) -> float:
    x, y = P[:, 0], P[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _triangulate(P: np.ndarray) -> np.ndarray:
    """Ear clipping of a simple counter-clockwise polygon: triangles ``[k-2, 3, 2]``."""
    idx = list(range(len(P)))
    tris = []

    def inside(p, a, b, c):
        def cross(o, u, v):
            return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])

        return cross(a, b, p) >= 0 and cross(b, c, p) >= 0 and cross(c, a, p) >= 0

    while len(idx) > 3:
        for j in range(len(idx)):
            i0, i1, i2 = idx[j - 1], idx[j], idx[(j + 1) % len(idx)]
            a, b, c = P[i0], P[i1], P[i2]
            if (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) <= 1e-15:
                continue  # reflex or degenerate
            if any(inside(P[m], a, b, c) for m in idx if m not in (i0, i1, i2)):
                continue
            tris.append((i0, i1, i2))
            idx.pop(j)
            break
        else:
            raise ValueError("the polygon is not simple: cannot triangulate it")
    tris.append(tuple(idx))
    return P[np.asarray(tris)]


class Extrusion(Shape):
    """A prism: the simple polygon ``polygon`` ``[k, 2]`` in the xy-plane, from ``z = -height/2`` to ``height/2``."""

    name = "extrusion"

    def __init__(self, polygon, height: float = 0.5):
        P = np.asarray(polygon, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != 2 or len(P) < 3 or height <= 0:
            raise ValueError("an extrusion needs a polygon [k >= 3, 2] and height > 0")
        if _signed_area(P) < 0:
            P = P[::-1].copy()
        self.polygon, self.height = P, float(height)
        self.tris = _triangulate(P)
        e = np.roll(P, -1, 0) - P
        self._len = np.linalg.norm(e, axis=1)
        self._tri_area = 0.5 * np.abs(
            (self.tris[:, 1, 0] - self.tris[:, 0, 0]) * (self.tris[:, 2, 1] - self.tris[:, 0, 1])
            - (self.tris[:, 1, 1] - self.tris[:, 0, 1]) * (self.tris[:, 2, 0] - self.tris[:, 0, 0])
        )

    @property
    def area(self) -> float:
        return float(self._len.sum() * self.height + 2 * self._tri_area.sum())

    def _sample(self, n, g, dev):
        P, h, k = _f(self.polygon, dev), self.height, len(self.polygon)
        cap = float(self._tri_area.sum())
        part = _pick([*(self._len * h), cap, cap], n, g, dev)
        p = torch.empty(n, 3, dtype=F64, device=dev)
        nrm = torch.zeros(n, 3, dtype=F64, device=dev)
        wall = part < k
        m = int(wall.sum())
        if m:
            i = part[wall]
            a, b = P[i], P[(i + 1) % k]
            s = uniform(m, generator=g, device=dev)[:, None]
            p[wall] = torch.cat([a + s * (b - a), uniform(m, -h / 2, h / 2, g, dev)[:, None]], 1)
            e = b - a
            nrm[wall] = torch.stack([e[:, 1], -e[:, 0], torch.zeros(m, dtype=F64, device=dev)], 1) / e.norm(
                dim=1, keepdim=True
            )
        T = _f(self.tris, dev)
        for idx, z in ((k, -h / 2), (k + 1, h / 2)):
            sel = part == idx
            m = int(sel.sum())
            if m:
                t = T[_pick(list(self._tri_area), m, g, dev)]
                u, v = uniform(m, generator=g, device=dev), uniform(m, generator=g, device=dev)
                su = torch.sqrt(u)[:, None]
                xy = (1 - su) * t[:, 0] + su * (1 - v[:, None]) * t[:, 1] + su * v[:, None] * t[:, 2]
                p[sel] = torch.cat([xy, torch.full((m, 1), z, dtype=F64, device=dev)], 1)
                nrm[sel, 2] = math.copysign(1.0, z)
        return p, nrm

    def _in_polygon(self, xy: torch.Tensor) -> torch.Tensor:
        P = _f(self.polygon, xy.device)
        a, b = P, torch.roll(P, -1, 0)
        x, y = xy[..., 0:1], xy[..., 1:2]
        crosses = (a[:, 1] > y) != (b[:, 1] > y)
        xint = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (
            b[:, 1] - a[:, 1] + (b[:, 1] == a[:, 1]) * 1e-300
        )
        return ((crosses & (x < xint)).sum(-1) % 2) == 1

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        inside = self._in_polygon(p[..., :2]) & (p[..., 2].abs() < self.height / 2 - TOL)
        if not inside.any():
            return inside
        # strictly inside: farther than TOL from every wall
        P = _f(self.polygon, p.device)
        a, e = P, torch.roll(P, -1, 0) - P
        q = p[..., None, :2] - a
        s = ((q * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
        dist = (q - s[..., None] * e).norm(dim=-1).amin(-1)
        return inside & (dist > TOL)

    def _intersect(self, o, d):
        h = self.height
        P = _f(self.polygon, o.device)
        a, e = P, torch.roll(P, -1, 0) - P  # [k, 2]

        def cross(u, v):
            return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

        den = cross(d[:, None, :2], e[None])  # [n, k]
        w = a[None] - o[:, None, :2]
        t = cross(w, e[None]) / den
        s = cross(w, d[:, None, :2]) / den
        z = o[:, None, 2] + t * d[:, None, 2]
        valid = (den.abs() > 1e-300) & (s >= 0) & (s <= 1) & (z.abs() <= h / 2)
        t = torch.where(valid & (t > TOL), t, torch.full_like(t, math.inf))
        tw, iw = t.min(1)
        nw = torch.stack([e[iw, 1], -e[iw, 0], torch.zeros_like(tw)], 1)
        cands = [(tw, torch.isfinite(tw), nw)]
        for zc, sg in ((-h / 2, -1.0), (h / 2, 1.0)):
            tc = torch.nan_to_num((zc - o[:, 2]) / d[:, 2], nan=math.inf)
            pc = o + tc.clamp(-1e300, 1e300)[:, None] * d
            nn = torch.zeros_like(o)
            nn[:, 2] = sg
            cands.append((tc, self._in_polygon(pc[:, :2]), nn))
        return _first(cands)

    def edges(self) -> list[Edge]:
        P, h = self.polygon, self.height / 2
        out = []
        for i in range(len(P)):
            a, b = P[i], P[(i + 1) % len(P)]
            for z in (-h, h):
                out.append(Segment(_f([*a, z], "cpu"), _f([*b, z], "cpu")))
            prev = P[i - 1]
            if abs((a[0] - prev[0]) * (b[1] - a[1]) - (a[1] - prev[1]) * (b[0] - a[0])) > 1e-12:
                out.append(Segment(_f([*a, -h], "cpu"), _f([*a, h], "cpu")))  # a crease, not a straight angle
        return out


class Transformed(Shape):
    """``shape`` under the affine map ``x -> A x + b`` (any invertible ``A``)."""

    def __init__(self, shape: Shape, A: torch.Tensor, b: torch.Tensor):
        self.shape, self.A, self.b = shape, torch.as_tensor(A, dtype=F64), torch.as_tensor(b, dtype=F64)
        if abs(float(torch.linalg.det(self.A))) < 1e-12:
            raise ValueError("the linear part of a transform must be invertible")
        self.Ainv = torch.linalg.inv(self.A)
        sv = torch.linalg.svdvals(self.A)
        self.smin, self.smax = float(sv.min()), float(sv.max())
        self.name = shape.name

    @property
    def isotropic(self) -> bool:
        M = self.A.T @ self.A
        return bool(torch.allclose(M, M[0, 0] * torch.eye(3, dtype=F64), rtol=1e-10, atol=1e-14))

    @property
    def area(self) -> float:
        if not self.isotropic:
            raise ValueError("the area of an anisotropically scaled shape has no closed form here")
        return self.shape.area * float(torch.linalg.det(self.A).abs()) ** (2 / 3)

    def _sample(self, n, g, dev):
        A, b, Ainv = self.A.to(dev), self.b.to(dev), self.Ainv.to(dev)
        ps, ns, got = [], [], 0
        while got < n:
            m = n - got if self.isotropic else int((n - got) * 1.1 * self.smax / self.smin) + 16
            p, nl = self.shape._sample(m, g, dev)
            nw = nl @ Ainv  # (A^{-T} n) as rows
            w = nw.norm(dim=1)
            if not self.isotropic:  # keep with probability sigma_min(A) |A^{-T} n| <= 1
                keep = uniform(m, generator=g, device=dev) < self.smin * w
                p, nw, w = p[keep], nw[keep], w[keep]
            ps.append(p @ A.T + b)
            ns.append(nw / w[:, None])
            got += len(p)
        return torch.cat(ps)[:n], torch.cat(ns)[:n]

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        return self.shape.contains((p - self.b.to(p.device)) @ self.Ainv.to(p.device).T)

    def _intersect(self, o, d):
        Ainv = self.Ainv.to(o.device)
        t, nl = self.shape._intersect((o - self.b.to(o.device)) @ Ainv.T, d @ Ainv.T)
        return t, nl @ Ainv

    def edges(self) -> list[Edge]:
        return [e.transform(self.A, self.b) for e in self.shape.edges()]

    def __repr__(self) -> str:
        return f"Transformed({self.shape!r})"


class Union(Shape):
    """The union of solids ``parts`` (each rigidly placed, so its area is exact), with its sharp ``edges``.

    The parts of a union must meet by penetration, never along a shared face (a shared face would
    be counted once per part). ``edges`` lists the union's creases, junction curves included.
    """

    def __init__(self, parts: list[Shape], edges: list[Edge] | None = None, name: str = "union"):
        self.parts, self._edges, self.name = list(parts), list(edges or []), name
        self._areas = [p.area for p in self.parts]  # raises for an anisotropic part

    @property
    def area(self) -> float:
        raise ValueError("a union's area is only known up to the overlaps: estimate it by sampling")

    def _sample(self, n, g, dev):
        ps, ns, got, rate = [], [], 0, 0.8
        while got < n:
            m = int((n - got) / rate * 1.2) + 32
            which = _pick(self._areas, m, g, dev)
            p = torch.empty(m, 3, dtype=F64, device=dev)
            nrm = torch.empty(m, 3, dtype=F64, device=dev)
            for i, part in enumerate(self.parts):
                sel = which == i
                k = int(sel.sum())
                if k:
                    p[sel], nrm[sel] = part._sample(k, g, dev)
            keep = torch.ones(m, dtype=torch.bool, device=dev)
            for i, part in enumerate(self.parts):
                keep &= ~(part.contains(p) & (which != i))
            rate = max(float(keep.float().mean()), 0.05)
            ps.append(p[keep])
            ns.append(nrm[keep])
            got += int(keep.sum())
        return torch.cat(ps)[:n], torch.cat(ns)[:n]

    def contains(self, points):
        p = torch.as_tensor(points, dtype=F64)
        out = torch.zeros(p.shape[:-1], dtype=torch.bool, device=p.device)
        for part in self.parts:
            out |= part.contains(p)
        return out

    def _intersect(self, o, d):
        ts, ns = zip(*(part._intersect(o, d) for part in self.parts))
        t = torch.stack(ts, 1)
        best = t.argmin(1)
        rows = torch.arange(len(o), device=o.device)
        return t[rows, best], torch.stack(ns, 1)[rows, best]

    def edges(self) -> list[Edge]:
        return list(self._edges)

    def __repr__(self) -> str:
        return f"Union({self.name}: {', '.join(repr(p) for p in self.parts)})"


# ---------------------------------------------------------------- composites
def _at(shape: Shape, x=0.0, y=0.0, z=0.0, rotation=None) -> Transformed:
    return shape.transformed(rotation=rotation, translation=[x, y, z])


def _box_edges(c, size, zmin=None, zmax=None) -> list[Edge]:
    """Edges of an axis-aligned box centred at ``c``; vertical edges clipped to [zmin, zmax], and the
    horizontal rectangle at a face dropped when that face is buried (zmin/zmax given)."""
    c, h = np.asarray(c, float), np.asarray(size, float) / 2
    lo, hi = c[2] - h[2], c[2] + h[2]
    out = []
    corners = [(sx, sy) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    for z, buried in ((lo, zmin is not None), (hi, zmax is not None)):
        if buried:
            continue
        for i in range(4):
            (ax, ay), (bx, by) = corners[i], corners[(i + 1) % 4]
            out.append(
                Segment(
                    _f([c[0] + ax * h[0], c[1] + ay * h[1], z], "cpu"),
                    _f([c[0] + bx * h[0], c[1] + by * h[1], z], "cpu"),
                )
            )
    z0, z1 = (lo if zmin is None else zmin), (hi if zmax is None else zmax)
    for sx, sy in corners:
        out.append(
            Segment(
                _f([c[0] + sx * h[0], c[1] + sy * h[1], z0], "cpu"),
                _f([c[0] + sx * h[0], c[1] + sy * h[1], z1], "cpu"),
            )
        )
    return out


def _rect(c, size, z) -> list[Edge]:
    """The rectangle of a box's cross-section at height ``z`` (a junction with a horizontal face)."""
    c, h = np.asarray(c, float), np.asarray(size, float) / 2
    pts = [[c[0] + sx * h[0], c[1] + sy * h[1], z] for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return [Segment(_f(pts[i], "cpu"), _f(pts[(i + 1) % 4], "cpu")) for i in range(4)]


def table(
    width=1.4, depth=0.8, top=0.06, leg_height=0.7, leg_radius=0.035, inset=0.1, round_top=False
) -> Union:
    """A table: a box top (or a round top of diameter ``width``) on four cylinder legs whose upper ends
    are buried in the top. Edges: the top's edges, the legs' feet and the leg–top junction circles."""
    if not (leg_radius + 0.005 < inset and 2 * inset < min(width, depth)) or top <= 0 or leg_height <= 0:
        raise ValueError("table legs must fit under the top: leg_radius < inset < min(width, depth) / 2")
    zt = leg_height + top / 2
    if round_top:
        R = width / 2
        parts, edges = (
            [_at(Cylinder(R, top), z=zt)],
            [Arc.circle([0, 0, z], [0, 0, 1], R) for z in (leg_height, leg_height + top)],
        )
        d = R - inset
        legs = [
            (d * math.cos(a), d * math.sin(a))
            for a in (math.pi / 4, 3 * math.pi / 4, 5 * math.pi / 4, 7 * math.pi / 4)
        ]
    else:
        parts, edges = [_at(Box((width, depth, top)), z=zt)], _box_edges([0, 0, zt], [width, depth, top])
        legs = [(sx * (width / 2 - inset), sy * (depth / 2 - inset)) for sx in (-1, 1) for sy in (-1, 1)]
    h = leg_height + top / 2  # up to the middle of the top
    for x, y in legs:
        parts.append(_at(Cylinder(leg_radius, h), x, y, h / 2))
        edges += [
            Arc.circle([x, y, 0], [0, 0, 1], leg_radius),
            Arc.circle([x, y, leg_height], [0, 0, 1], leg_radius),
        ]
    return Union(parts, edges, "table")


def chair(
    width=0.5, depth=0.5, seat=0.06, leg=0.04, leg_height=0.45, back_height=0.5, back=0.04, inset=0.01
) -> Union:
    """A chair: a box seat on four square legs, a box backrest rising from the seat's back; every contact
    is a penetration, so the junctions are exact rectangles."""
    if not (leg + 2 * inset < min(width, depth) / 2 and back + inset < depth and seat > 0):
        raise ValueError("chair legs and backrest must fit under and on the seat")
    zs = leg_height + seat / 2
    parts = [_at(Box((width, depth, seat)), z=zs)]
    edges = _box_edges([0, 0, zs], [width, depth, seat])
    for sx in (-1, 1):
        for sy in (-1, 1):
            c = [
                sx * (width / 2 - inset - leg / 2),
                sy * (depth / 2 - inset - leg / 2),
                (leg_height + seat / 2) / 2,
            ]
            size = [leg, leg, leg_height + seat / 2]
            parts.append(_at(Box(size), *c))
            edges += _box_edges(c, size, zmax=leg_height) + _rect(c, size, leg_height)
    top = leg_height + seat
    c = [0, depth / 2 - inset - back / 2, top - seat / 2 + (back_height + seat / 2) / 2]  # at +y
    size = [width - 2 * inset, back, back_height + seat / 2]
    parts.append(_at(Box(size), *c))
    edges += _box_edges(c, size, zmin=top) + _rect(c, size, top)
    return Union(parts, edges, "chair")


def lamp(
    base_radius=0.28, base=0.06, pole_radius=0.02, pole=0.7, shade_bottom=0.3, shade_top=0.12, shade=0.28
) -> Union:
    """A lamp: a disk base, a thin pole buried in the base and in the shade, a frustum shade."""
    if not (
        pole_radius < min(base_radius, shade_top) and shade_top < shade_bottom and min(base, pole, shade) > 0
    ):
        raise ValueError("lamp: the pole must be thinner than the base and the shade's top")
    zb = base + pole  # the shade's bottom
    parts = [_at(Cylinder(base_radius, base), z=base / 2)]
    z0, z1 = base / 2, zb + shade / 2
    parts.append(_at(Cylinder(pole_radius, z1 - z0), z=(z0 + z1) / 2))
    parts.append(_at(Cone(shade_bottom, shade, shade_top), z=zb + shade / 2))
    circle = lambda z, r: Arc.circle([0, 0, z], [0, 0, 1], r)
    edges = [circle(0, base_radius), circle(base, base_radius), circle(base, pole_radius),
             circle(zb, pole_radius), circle(zb, shade_bottom), circle(zb + shade, shade_top)]  # fmt: skip
    return Union(parts, edges, "lamp")


def mug(
    radius=0.4,
    height=0.9,
    wall=0.07,
    bottom=0.08,
    handle=0.22,
    handle_radius=0.025,
    recess=0.03,
    samples=1025,
) -> Union:
    """A mug: a thick-walled tube, a bottom plate recessed from below and buried in the wall, and a torus
    handle whose ends are buried in the wall. The handle–wall junctions have no closed form: they are
    polylines of ``samples - 1`` vertices on the true curves to machine precision (bisection); their
    chords stray from the curve by ~1e-7 at the default resolution."""
    ri = radius - wall
    if not (
        2.2 * handle_radius < wall < radius
        and 0 < recess < bottom < height / 2
        and handle_radius < handle < height / 2
    ):
        raise ValueError("mug: need 2.2 * handle_radius < wall < radius, 0 < recess < bottom < height / 2")
    parts = [_at(Tube(radius, ri, height), z=height / 2)]
    plate_r = ri + wall / 2
    parts.append(_at(Cylinder(plate_r, bottom - recess), z=(recess + bottom) / 2))
    # the handle: a torus about the y axis, centred so that its inner side sits inside the wall
    xc, zc = ri + wall / 2 + handle, height / 2
    Rx = rotation_about(torch.tensor([1.0, 0, 0]), -math.pi / 2)  # local z -> world y
    parts.append(_at(Torus(handle, handle_radius), xc, 0, zc, Rx))
    circle = lambda z, r: Arc.circle([0, 0, z], [0, 0, 1], r)
    edges = [circle(height, radius), circle(height, ri), circle(0, radius), circle(0, ri),
             circle(recess, ri), circle(bottom, ri)]  # fmt: skip
    theta = torch.linspace(0, 2 * math.pi, samples, dtype=F64)[:-1]
    rho = handle + handle_radius * torch.cos(theta)
    y = handle_radius * torch.sin(theta)
    for lo, hi in ((math.pi / 2, math.pi), (1.5 * math.pi, math.pi)):  # f(lo) > 0 (outside), f(hi) < 0
        a, b = torch.full_like(theta, lo), torch.full_like(theta, hi)
        for _ in range(60):
            mid = (a + b) / 2
            f = torch.hypot(xc + rho * torch.cos(mid), y) - radius
            a, b = torch.where(f > 0, mid, a), torch.where(f > 0, b, mid)
        phi = (a + b) / 2
        # torus-local point (rho cos phi, rho sin phi, r sin theta), rotated by Rx and moved to (xc, 0, zc)
        local = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), y], 1)
        edges.append(Polyline(local @ Rx.T + _f([xc, 0, zc], "cpu"), closed=True))
    return Union(parts, edges, "mug")


# ---------------------------------------------------------------- random families
def _u(g, lo, hi) -> float:
    return float(uniform(1, lo, hi, g, "cpu")[0])


def _params(name: str, g) -> Shape:
    if name == "sphere":
        return Sphere(1.0)
    if name == "box":
        return Box([_u(g, 0.5, 1.5) for _ in range(3)])
    if name == "cylinder":
        return Cylinder(_u(g, 0.3, 0.6), _u(g, 0.5, 1.5))
    if name == "cone":
        return Cone(_u(g, 0.3, 0.6), _u(g, 0.6, 1.4))
    if name == "torus":
        return Torus(_u(g, 0.5, 0.8), _u(g, 0.1, 0.3))
    if name == "extrusion":
        k = int(torch.randint(5, 9, (1,), generator=g))
        return Extrusion(star_polygon(k, _u(g, 0.4, 0.7)), _u(g, 0.2, 0.6))
    if name == "table":
        w, d = _u(g, 1.0, 1.6), _u(g, 0.6, 1.0)
        return table(w, d, _u(g, 0.04, 0.1), _u(g, 0.5, 0.8), _u(g, 0.02, 0.05), _u(g, 0.07, 0.15),
                     round_top=_u(g, 0, 1) < 0.3)  # fmt: skip
    if name == "chair":
        return chair(_u(g, 0.4, 0.6), _u(g, 0.4, 0.6), _u(g, 0.04, 0.08), _u(g, 0.03, 0.06), _u(g, 0.35, 0.5),
                     _u(g, 0.35, 0.6), _u(g, 0.03, 0.06))  # fmt: skip
    if name == "lamp":
        return lamp(_u(g, 0.2, 0.35), _u(g, 0.04, 0.08), _u(g, 0.015, 0.03), _u(g, 0.5, 0.9), _u(g, 0.2, 0.35),
                    _u(g, 0.08, 0.15), _u(g, 0.2, 0.35))  # fmt: skip
    if name == "mug":
        wall = _u(g, 0.06, 0.09)
        return mug(_u(g, 0.3, 0.45), _u(g, 0.6, 1.0), wall, _u(g, 0.05, 0.1), _u(g, 0.15, 0.25),
                   _u(g, 0.015, wall / 2.3), recess=0.02)  # fmt: skip
    raise ValueError(f"unknown shape class {name!r}: choose from {', '.join(CLASSES)}")


CLASSES = ("sphere", "box", "cylinder", "cone", "torus", "extrusion", "table", "chair", "lamp", "mug")


def random_shape(
    name: str,
    generator: torch.Generator | None = None,
    *,
    scale: tuple[float, float] | None = (0.6, 1.4),
    rotation: str | None = "z",
) -> Shape:
    """A member of class ``name`` (see :data:`CLASSES`) with random parameters, then an anisotropic
    scale ``U[scale]^3`` and a random rotation (``"z"``: about the up axis; ``"so3"``: uniform;
    None: none). Parameters come from a CPU generator derived from ``generator``."""
    g = torch.Generator().manual_seed(
        int(
            torch.randint(
                0, 2**62, (1,), generator=generator, device=generator.device if generator else "cpu"
            )
        )
    )
    shape = _params(name, g)
    s = uniform(3, *scale, g, "cpu") if scale is not None else None
    R = random_rotation(g, rotation) if rotation else None
    return shape.transformed(rotation=R, scale=s)


def sample_shapes(
    name: str,
    count: int,
    points: int = 2048,
    seed: int = 0,
    *,
    radius: float = 0.5,
    scale: tuple[float, float] | None = (0.6, 1.4),
    rotation: str | None = "z",
    normals: bool = False,
    device=None,
    return_shapes: bool = False,
):
    """``count`` clouds ``[count, points, 3]`` (float32) of class ``name``, each normalised into the
    ball of ``radius`` (its farthest point at ``radius`` exactly, :func:`normalize_unit_ball`).

    Shape ``i`` depends on ``(seed, i)`` only. With ``return_shapes=True`` also returns the
    normalised :class:`Shape` of each cloud (exact ground truth: edges, rays, fresh samples).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    clouds, nrms, shapes = [], [], []
    for i in range(count):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        shape = random_shape(name, g, scale=scale, rotation=rotation)
        gd = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + i)
        p, n = shape.sample(points, gd, normals=True, dtype=F64)
        pn, c, s = normalize_unit_ball(p, radius)
        clouds.append(pn.float())
        nrms.append(n.float())
        if return_shapes:
            shapes.append(shape.transformed(scale=float(s), translation=(-c[0] * s).cpu()))
    empty = torch.zeros(0, points, 3)
    out = [torch.stack(clouds) if clouds else empty]
    if normals:
        out.append(torch.stack(nrms) if nrms else empty)
    if return_shapes:
        out.append(shapes)
    return out[0] if len(out) == 1 else tuple(out)
