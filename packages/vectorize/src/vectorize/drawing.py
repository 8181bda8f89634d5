"""The vector drawing: straight strokes and quadratic Béziers with widths, in pixel coordinates.

Coordinates follow SVG: the origin is the top-left corner of the image, x to the right, y down, and
pixel ``(i, j)`` (row, column) covers ``[j, j+1] x [i, i+1]``. A stroke has butt caps.

* ``lines``: ``[N, 5]`` rows ``(x1, y1, x2, y2, width)``;
* ``curves``: ``[M, 7]`` rows ``(x0, y0, x1, y1, x2, y2, width)``, the quadratic Bézier
  ``B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _rows(a, k: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, k) if a is not None else np.zeros((0, k))
    return a


@dataclass
class Drawing:
    """Lines and quadratic Béziers on a ``height x width`` canvas."""

    lines: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    curves: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    height: int = 64
    width: int = 64

    def __post_init__(self):
        self.lines, self.curves = _rows(self.lines, 5), _rows(self.curves, 7)

    def __len__(self) -> int:
        return len(self.lines) + len(self.curves)

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def copy(self) -> Drawing:
        return Drawing(self.lines.copy(), self.curves.copy(), self.height, self.width)

    def shifted(self, dx: float, dy: float, height: int | None = None, width: int | None = None) -> Drawing:
        """The drawing translated by ``(dx, dy)`` (onto a canvas of another size if given)."""
        lines, curves = self.lines.copy(), self.curves.copy()
        lines[:, [0, 2]] += dx
        lines[:, [1, 3]] += dy
        curves[:, [0, 2, 4]] += dx
        curves[:, [1, 3, 5]] += dy
        return Drawing(lines, curves, height or self.height, width or self.width)

    def rotated90(self) -> Drawing:
        """The drawing rotated by 90° clockwise with its canvas (``np.rot90(image, -1)``)."""

        def rot(xy):  # (x, y) -> (H - y, x)
            out = xy.copy()
            out[:, 0::2], out[:, 1::2] = self.height - xy[:, 1::2], xy[:, 0::2]
            return out

        lines = np.concatenate([rot(self.lines[:, :4]), self.lines[:, 4:]], 1)
        curves = np.concatenate([rot(self.curves[:, :6]), self.curves[:, 6:]], 1)
        return Drawing(lines, curves, self.width, self.height)

    def as_curves(self) -> np.ndarray:
        """Every stroke as a quadratic Bézier ``[N + M, 7]`` (a line's control point is its midpoint)."""
        L = self.lines
        mid = (L[:, 0:2] + L[:, 2:4]) / 2
        return np.concatenate([np.concatenate([L[:, 0:2], mid, L[:, 2:5]], 1), self.curves], 0)

    def mean_width(self) -> float:
        w = np.concatenate([self.lines[:, 4], self.curves[:, 6]])
        return float(w.mean()) if len(w) else 0.0


def curves_to_lines(curves: np.ndarray) -> np.ndarray:
    """Each Bézier's chord ``[M, 5]``."""
    return np.concatenate([curves[:, 0:2], curves[:, 4:6], curves[:, 6:7]], 1)


def split_straight(curves: np.ndarray, tol: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split Béziers into (lines, curves): a curve whose control point lies within ``tol`` px of its
    chord's midpoint bulges at most ``tol / 2`` px and becomes its chord."""
    mid = (curves[:, 0:2] + curves[:, 4:6]) / 2
    straight = np.linalg.norm(curves[:, 2:4] - mid, axis=1) <= tol
    return curves_to_lines(curves[straight]), curves[~straight]


def bezier_points(curves: np.ndarray, k: int) -> np.ndarray:
    """``[M, k+1, 2]`` points of each Bézier at ``t = 0, 1/k, ..., 1``."""
    t = np.linspace(0, 1, k + 1)[None, :, None]
    p0, p1, p2 = curves[:, None, 0:2], curves[:, None, 2:4], curves[:, None, 4:6]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2


def bezier_length(curves: np.ndarray, k: int = 16) -> np.ndarray:
    pts = bezier_points(curves, k)
    return np.linalg.norm(np.diff(pts, axis=1), axis=2).sum(1)
