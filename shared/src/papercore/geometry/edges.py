r"""Sharp-edge sets: the creases of a shape, as exact curves (def3d's ground truth).

Three kinds of curve, each closed under any affine map :math:`x \mapsto Ax + b` (so a shape's edges
follow it through rotations, anisotropic scales and normalisation exactly):

* :class:`Segment` ``a → b``;
* :class:`Arc`: :math:`c + u\cos\theta + v\sin\theta`, :math:`\theta \in [\theta_0, \theta_1]` — a circle
  (or arc) when ``u ⟂ v`` and ``|u| = |v|``, an ellipse after an anisotropic scale;
* :class:`Polyline`: points of a curve with no closed form (a torus handle meeting a mug's wall),
  each vertex on the true curve to machine precision (bisection), straight in between.

:func:`sample_edges` draws points uniformly by arc length over a set of curves;
:func:`distance_to_edges` gives each point's distance to the set (exact for segments and polylines;
for arcs, a dense parametric search polished by Newton steps, to ~1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Arc", "Edge", "Polyline", "Segment", "distance_to_edges", "edge_length", "sample_edges"]


def _t(x, device=None) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64, device=device)


@dataclass(frozen=True)
class Segment:
    """The straight segment from ``a`` to ``b`` (``[3]`` each)."""

    a: torch.Tensor
    b: torch.Tensor

    def transform(self, A: torch.Tensor, t: torch.Tensor) -> Segment:
        return Segment(A @ _t(self.a, A.device) + t, A @ _t(self.b, A.device) + t)

    def length(self) -> float:
        return float((_t(self.b) - _t(self.a)).norm())

    def points(self, s: torch.Tensor) -> torch.Tensor:
        """Points at arc-length fractions ``s`` in [0, 1]."""
        a, b = _t(self.a, s.device), _t(self.b, s.device)
        return a + s[:, None] * (b - a)

    def distance(self, p: torch.Tensor) -> torch.Tensor:
        a, b = _t(self.a, p.device), _t(self.b, p.device)
        ab = b - a
        s = ((p - a) @ ab / (ab @ ab).clamp_min(1e-300)).clamp(0, 1)
        return (p - a - s[:, None] * ab).norm(dim=1)


@dataclass(frozen=True)
class Arc:
    r"""The curve :math:`c + u\cos\theta + v\sin\theta` for :math:`\theta \in [start, end]` (a full circle by default)."""

    center: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    start: float = 0.0
    end: float = 2 * math.pi

    @staticmethod
    def circle(center, normal, radius: float) -> Arc:
        """The circle of ``radius`` about ``center`` in the plane orthogonal to ``normal``."""
        n = _t(normal)
        n = n / n.norm()
        helper = _t([1.0, 0, 0]) if abs(float(n[0])) < 0.9 else _t([0, 1.0, 0])
        u = torch.linalg.cross(n, helper)
        u = u / u.norm()
        v = torch.linalg.cross(n, u)
        return Arc(_t(center), radius * u, radius * v)

    def transform(self, A: torch.Tensor, t: torch.Tensor) -> Arc:
        d = A.device
        return Arc(A @ _t(self.center, d) + t, A @ _t(self.u, d), A @ _t(self.v, d), self.start, self.end)

    def _at(self, theta: torch.Tensor) -> torch.Tensor:
        d = theta.device
        return (_t(self.center, d) + torch.cos(theta)[:, None] * _t(self.u, d)
                + torch.sin(theta)[:, None] * _t(self.v, d))  # fmt: skip

    def _table(self, m: int = 4097, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        theta = torch.linspace(self.start, self.end, m, dtype=torch.float64, device=device)
        p = self._at(theta)
        cum = torch.cat(
            [torch.zeros(1, dtype=torch.float64, device=device), (p[1:] - p[:-1]).norm(dim=1).cumsum(0)]
        )
        return theta, cum

    def length(self) -> float:
        u, v = _t(self.u), _t(self.v)
        if abs(float(u @ v)) < 1e-12 and abs(float(u.norm() - v.norm())) < 1e-12:  # a true circle
            return float(u.norm()) * (self.end - self.start)
        return float(self._table()[1][-1])  # an ellipse: the arc length numerically

    def points(self, s: torch.Tensor) -> torch.Tensor:
        theta, cum = self._table(device=s.device)
        target = s * cum[-1]
        i = torch.searchsorted(cum, target).clamp(1, len(cum) - 1)
        w = (target - cum[i - 1]) / (cum[i] - cum[i - 1]).clamp_min(1e-300)
        return self._at(theta[i - 1] + w * (theta[i] - theta[i - 1]))

    def distance(self, p: torch.Tensor) -> torch.Tensor:
        d = p.device
        c, u, v = _t(self.center, d), _t(self.u, d), _t(self.v, d)
        grid = torch.linspace(self.start, self.end, 721, dtype=torch.float64, device=d)
        q = p - c
        best = ((p[:, None, :] - self._at(grid)[None]) ** 2).sum(-1).argmin(1)
        theta = grid[best]
        for _ in range(8):  # Newton on f(θ) = ½|q − u cosθ − v sinθ|²
            cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
            r = q - u * cos - v * sin
            dr = u * sin - v * cos
            d2r = u * cos + v * sin
            g = (r * dr).sum(1)
            h = (dr * dr).sum(1) + (r * d2r).sum(1)
            step = torch.where(h > 0, g / h.clamp_min(1e-300), torch.zeros_like(g))
            theta = (theta - step).clamp(self.start, self.end)
        dist = (q - u * torch.cos(theta)[:, None] - v * torch.sin(theta)[:, None]).norm(dim=1)
        ends = torch.stack([self._at(_t([self.start], d))[0], self._at(_t([self.end], d))[0]])
        return torch.minimum(dist, (p[:, None] - ends[None]).norm(dim=-1).amin(1))


@dataclass(frozen=True)
class Polyline:
    """Vertices ``[m, 3]`` of a curve, joined by straight pieces (``closed``: the last joins the first)."""

    vertices: torch.Tensor
    closed: bool = False

    def _pts(self, device=None) -> torch.Tensor:
        v = _t(self.vertices, device)
        return torch.cat([v, v[:1]]) if self.closed else v

    def transform(self, A: torch.Tensor, t: torch.Tensor) -> Polyline:
        return Polyline(_t(self.vertices, A.device) @ A.T + t, self.closed)

    def segments(self) -> list[Segment]:
        v = self._pts()
        return [Segment(v[i], v[i + 1]) for i in range(len(v) - 1)]

    def length(self) -> float:
        v = self._pts()
        return float((v[1:] - v[:-1]).norm(dim=1).sum())

    def points(self, s: torch.Tensor) -> torch.Tensor:
        v = self._pts(s.device)
        cum = torch.cat(
            [torch.zeros(1, dtype=torch.float64, device=s.device), (v[1:] - v[:-1]).norm(dim=1).cumsum(0)]
        )
        target = s * cum[-1]
        i = torch.searchsorted(cum, target).clamp(1, len(cum) - 1)
        w = (target - cum[i - 1]) / (cum[i] - cum[i - 1]).clamp_min(1e-300)
        return v[i - 1] + w[:, None] * (v[i] - v[i - 1])

    def distance(self, p: torch.Tensor) -> torch.Tensor:
        v = self._pts(p.device)
        a, ab = v[:-1], v[1:] - v[:-1]
        s = (((p[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-300)).clamp(0, 1)
        return (p[:, None] - a[None] - s[..., None] * ab[None]).norm(dim=-1).amin(1)


Edge = Segment | Arc | Polyline


def edge_length(edges: list[Edge]) -> float:
    """Total arc length of a set of curves."""
    return sum(e.length() for e in edges)


def sample_edges(
    edges: list[Edge], n: int, generator: torch.Generator | None = None, dtype=torch.float32
) -> torch.Tensor:
    """``n`` points uniform by arc length on the union of ``edges`` (``[n, 3]``)."""
    if not edges:
        raise ValueError("the shape has no sharp edges to sample")
    dev = generator.device if generator is not None else torch.device("cpu")
    lengths = torch.tensor([e.length() for e in edges], dtype=torch.float64, device=dev)
    which = torch.multinomial(lengths, n, replacement=True, generator=generator)
    s = torch.rand(n, generator=generator, device=dev, dtype=torch.float64)
    out = torch.empty(n, 3, dtype=torch.float64, device=dev)
    for i, e in enumerate(edges):
        m = which == i
        if m.any():
            out[m] = e.points(s[m])
    return out.to(dtype)


def distance_to_edges(points: torch.Tensor, edges: list[Edge], chunk: int = 4096) -> torch.Tensor:
    """Distance of each point ``[n, 3]`` to the nearest curve of ``edges`` (float64 ``[n]``)."""
    p = points.to(torch.float64)
    out = torch.full((len(p),), math.inf, dtype=torch.float64, device=p.device)
    for i in range(0, len(p), chunk):
        q = p[i : i + chunk]
        for e in edges:
            out[i : i + chunk] = torch.minimum(out[i : i + chunk], e.distance(q))
    return out
