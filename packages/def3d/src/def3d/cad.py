r"""Synthetic CAD shapes whose surface patches and sharp curves are known exactly.

A :class:`CADShape` is a boolean-free composite: disjoint parts, each a prism over a polygon
(:class:`papercore.geometry.Extrusion`: boxes, L, T and stepped profiles) or a
:class:`papercore.geometry.Cylinder`, placed by a similarity :math:`x \mapsto sRx + t`. Every
surface sample and every ray hit carries the id of the **surface patch** it lies on (a wall, a cap,
a cylinder side), and every sharp curve (a :class:`~papercore.geometry.Segment` or a circle
:class:`~papercore.geometry.Arc`) carries the two patches it bounds. That is what DEF's
same-surface annotation needs (:func:`def3d.annotate.annotate`).

Patch ids of a prism over a polygon with ``k`` vertices: walls ``0..k-1`` (wall ``i`` joins vertex
``i`` to ``i+1``), bottom cap ``k``, top cap ``k+1``. Of a cylinder: side 0, bottom 1, top 2.
A part's ids are offset by the ids of the parts before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from papercore.geometry import Arc, Cylinder, Extrusion, Segment, random_rotation

__all__ = ["CURVE_ANGLE", "Curve", "CADShape", "Part", "box", "cylinder", "prism", "random_cad", "FAMILIES"]

F64 = torch.float64
CURVE_ANGLE = 1e-9  # a prism's vertical edge is a curve unless its two walls are coplanar


@dataclass
class Curve:
    """A sharp curve and the two surface patches (global ids) it bounds."""

    edge: Segment | Arc
    surfaces: tuple[int, int]


@dataclass
class Part:
    """A primitive (an Extrusion or a Cylinder) under ``x -> scale * R x + t``."""

    shape: Extrusion | Cylinder
    R: torch.Tensor
    t: torch.Tensor
    scale: float = 1.0

    @property
    def n_surfaces(self) -> int:
        return len(self.shape.polygon) + 2 if isinstance(self.shape, Extrusion) else 3

    @property
    def area(self) -> float:
        return self.shape.area * self.scale**2

    def to_world(self, p: torch.Tensor) -> torch.Tensor:
        return self.scale * p @ self.R.to(p).T + self.t.to(p)

    def to_local(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.t.to(p)) @ self.R.to(p) / self.scale

    def labels(self, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Local patch id of local surface points ``p`` with outward normals ``n``."""
        cap = n[:, 2].abs() > 0.5
        top = n[:, 2] > 0
        if isinstance(self.shape, Cylinder):
            return torch.where(cap, torch.where(top, 2, 1), 0)
        P = torch.as_tensor(self.shape.polygon, dtype=p.dtype, device=p.device)
        k = len(P)
        e = torch.roll(P, -1, 0) - P
        q = p[:, None, :2] - P
        s = ((q * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
        wall = (q - s[..., None] * e).norm(dim=-1).argmin(1)
        return torch.where(cap, torch.where(top, k + 1, k), wall)

    def local_curves(self) -> list[tuple[Segment | Arc, tuple[int, int]]]:
        sh = self.shape
        if isinstance(sh, Cylinder):
            h = sh.height / 2
            return [
                (Arc.circle([0, 0, -h], [0, 0, 1], sh.radius), (0, 1)),
                (Arc.circle([0, 0, h], [0, 0, 1], sh.radius), (0, 2)),
            ]
        P, h, k = sh.polygon, sh.height / 2, len(sh.polygon)
        out = []
        for i in range(k):
            a, b, prev = P[i], P[(i + 1) % k], P[i - 1]
            out.append(
                (Segment(torch.tensor([*a, -h], dtype=F64), torch.tensor([*b, -h], dtype=F64)), (i, k))
            )
            out.append(
                (Segment(torch.tensor([*a, h], dtype=F64), torch.tensor([*b, h], dtype=F64)), (i, k + 1))
            )
            cross = (a[0] - prev[0]) * (b[1] - a[1]) - (a[1] - prev[1]) * (b[0] - a[0])
            if abs(cross) > CURVE_ANGLE:
                out.append(
                    (
                        Segment(torch.tensor([*a, -h], dtype=F64), torch.tensor([*a, h], dtype=F64)),
                        ((i - 1) % k, i),
                    )
                )
        return out


class CADShape:
    """Disjoint :class:`Part` s with labelled surface patches and sharp :class:`Curve` s.

    Parameters
    ----------
    parts : list of Part
        Their solids must not intersect (nothing checks it; the generators place them apart).
    name : str
    """

    def __init__(self, parts: list[Part], name: str = "cad"):
        if not parts:
            raise ValueError("a CAD shape needs at least one part")
        self.parts, self.name = parts, name
        self.offsets = np.cumsum([0] + [p.n_surfaces for p in parts])[:-1].tolist()
        self.curves: list[Curve] = []
        for part, off in zip(parts, self.offsets):
            A, b = part.scale * part.R, part.t
            for e, (s1, s2) in part.local_curves():
                self.curves.append(Curve(e.transform(A, b), (s1 + off, s2 + off)))

    @property
    def n_surfaces(self) -> int:
        return self.offsets[-1] + self.parts[-1].n_surfaces

    @property
    def area(self) -> float:
        return sum(p.area for p in self.parts)

    @property
    def edges(self) -> list[Segment | Arc]:
        return [c.edge for c in self.curves]

    def transformed(self, R=None, t=None, scale: float = 1.0) -> CADShape:
        """The shape under ``x -> scale * R x + t`` (a similarity: ground truth moves and scales with it)."""
        R = torch.eye(3, dtype=F64) if R is None else torch.as_tensor(R, dtype=F64)
        t = torch.zeros(3, dtype=F64) if t is None else torch.as_tensor(t, dtype=F64)
        parts = [Part(p.shape, R @ p.R, scale * R @ p.t + t, scale * p.scale) for p in self.parts]
        return CADShape(parts, self.name)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """``n`` points uniform by area: ``points [n, 3]``, ``normals [n, 3]`` (float64), ``surface [n]`` (int64)."""
        g = generator
        w = torch.tensor([p.area for p in self.parts], dtype=F64)
        which = torch.multinomial(w, n, replacement=True, generator=g)
        pts, nrm, lab = (
            torch.empty(n, 3, dtype=F64),
            torch.empty(n, 3, dtype=F64),
            torch.empty(n, dtype=torch.long),
        )
        for j, (part, off) in enumerate(zip(self.parts, self.offsets)):
            m = which == j
            c = int(m.sum())
            if c:
                p, q = part.shape.sample(c, g, normals=True, dtype=F64)
                lab[m] = part.labels(p, q) + off
                pts[m], nrm[m] = part.to_world(p), q @ part.R.T
        return pts, nrm, lab

    def intersect(self, origins: torch.Tensor, directions: torch.Tensor):
        """First hits of rays: ``t`` (inf on a miss), ``points``, ``normals``, ``surface`` (-1 on a miss)."""
        o, d = origins.to(F64), directions.to(F64)
        best = torch.full((len(o),), math.inf, dtype=F64)
        nrm = torch.zeros_like(o)
        lab = torch.full((len(o),), -1, dtype=torch.long)
        for part, off in zip(self.parts, self.offsets):
            ol, dl = part.to_local(o), (d @ part.R.to(d)) / part.scale
            hit = part.shape.intersect(ol, dl)
            better = hit.t < best
            if better.any():
                pl = torch.where(hit.hit[:, None], hit.points, torch.zeros_like(ol))
                lab = torch.where(better, part.labels(pl, hit.normals) + off, lab)
                nrm = torch.where(better[:, None], hit.normals @ part.R.T.to(d), nrm)
                best = torch.where(better, hit.t, best)
        pts = o + torch.where(torch.isfinite(best), best, torch.zeros_like(best))[:, None] * d
        return best, pts, nrm, lab

    def curve_lengths(self) -> np.ndarray:
        return np.array([c.edge.length() for c in self.curves])

    def __repr__(self) -> str:
        return f"CADShape({self.name!r}, parts={len(self.parts)}, curves={len(self.curves)})"


# ---------------------------------------------------------------------- generators
def _part(shape, R=None, t=(0, 0, 0), scale=1.0) -> Part:
    R = torch.eye(3, dtype=F64) if R is None else torch.as_tensor(R, dtype=F64)
    return Part(shape, R, torch.as_tensor(t, dtype=F64), float(scale))


def box(size=(1.0, 1.0, 1.0)) -> CADShape:
    """The box ``[-size/2, size/2]`` (a prism over a rectangle: walls 0..3, bottom 4, top 5)."""
    a, b, c = (float(s) for s in np.broadcast_to(np.asarray(size, float), (3,)))
    poly = np.array([[-a / 2, -b / 2], [a / 2, -b / 2], [a / 2, b / 2], [-a / 2, b / 2]])
    return CADShape([_part(Extrusion(poly, c))], "box")


def cylinder(radius: float = 0.5, height: float = 1.0) -> CADShape:
    return CADShape([_part(Cylinder(radius, height))], "cylinder")


def prism(polygon, height: float) -> CADShape:
    return CADShape([_part(Extrusion(np.asarray(polygon, float), height))], "prism")


def _profile(kind: str, g: np.random.Generator) -> np.ndarray:
    u = lambda lo, hi: float(g.uniform(lo, hi))  # noqa: E731
    if kind == "L":
        w, h, a, b = u(1.5, 3), u(1.5, 3), u(0.4, 0.9), u(0.4, 0.9)
        return np.array([[0, 0], [w, 0], [w, b], [a, b], [a, h], [0, h]])
    if kind == "T":
        w, h, s, t = u(2, 3.5), u(1.5, 3), u(0.4, 0.9), u(0.4, 0.9)
        return np.array(
            [
                [-w / 2, h - t],
                [-s / 2, h - t],
                [-s / 2, 0],
                [s / 2, 0],
                [s / 2, h - t],
                [w / 2, h - t],
                [w / 2, h],
                [-w / 2, h],
            ]
        )
    if kind == "stepped":
        steps = int(g.integers(2, 4))
        xs = np.cumsum([0] + [u(0.5, 1.2) for _ in range(steps)])
        ys = np.sort([u(0.4, 2.5) for _ in range(steps)])[::-1] + 0.2
        pts = [[0, 0], [xs[-1], 0]]
        for i in range(steps - 1, -1, -1):
            pts += [[xs[i + 1], ys[i]], [xs[i], ys[i]]]
        return np.array(pts[:-1] + [[0, ys[0]]])
    raise ValueError(kind)


FAMILIES = ("box", "cylinder", "L", "T", "stepped", "composite")


def random_cad(family: str, seed: int) -> CADShape:
    """A random member of ``family`` (see :data:`FAMILIES`), randomly rotated, centred near the origin."""
    g = np.random.default_rng(seed)
    tg = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: float(g.uniform(lo, hi))  # noqa: E731
    if family == "box":
        parts = [_part(box((u(0.8, 3), u(0.8, 3), u(0.3, 2))).parts[0].shape)]
    elif family == "cylinder":
        parts = [_part(Cylinder(u(0.4, 1.2), u(0.3, 2.5)))]
    elif family in ("L", "T", "stepped"):
        P = _profile(family, g)
        parts = [_part(Extrusion(P - P.mean(0), u(0.6, 2.5)))]
    elif family == "composite":  # a plate with a post and a block standing on it, a small gap apart
        a, b, c = u(2.5, 4), u(2, 3.5), u(0.2, 0.5)
        gap = u(0.02, 0.1)
        parts = [_part(box((a, b, c)).parts[0].shape)]
        r, hh = u(0.2, 0.5), u(0.5, 1.5)
        parts.append(_part(Cylinder(r, hh), t=(-a / 4, 0, c / 2 + gap + hh / 2)))
        s = u(0.4, 0.9)
        parts.append(_part(box((s, s, s)).parts[0].shape, t=(a / 4, 0, c / 2 + gap + s / 2)))
    else:
        raise ValueError(f"unknown shape family {family!r}: choose from {', '.join(FAMILIES)}")
    R = random_rotation(tg).to(F64)
    shape = CADShape(parts, family)
    return shape.transformed(R=R)
