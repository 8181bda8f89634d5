"""The closed-form stroke energy of the refinement.

A stroke piece is a rectangle with centre ``c``, direction ``theta``, length ``L`` and width ``W``.
Its unit energy at a point ``p`` is the rectangle's indicator smoothed by an isotropic Gaussian of
scale ``sigma``: with ``(u, v)`` the coordinates of ``p - c`` along and across the piece,

.. math::

    \\phi_\\sigma(p) = \\int_{rect} \\mathcal N(p - z; 0, \\sigma^2 I)\\, dz
      = \\tfrac14 \\Big[\\operatorname{erf}\\tfrac{L/2 - u}{\\sqrt2\\sigma} + \\operatorname{erf}\\tfrac{L/2 + u}{\\sqrt2\\sigma}\\Big]
              \\Big[\\operatorname{erf}\\tfrac{W/2 - v}{\\sqrt2\\sigma} + \\operatorname{erf}\\tfrac{W/2 + v}{\\sqrt2\\sigma}\\Big],

a product of erf terms, smooth in all five parameters. The refinement uses two ranges,
``0.98 phi_1 + 0.02 phi_32`` (close: 1 px, far: 32 px, which pulls strokes towards ink they do not
yet touch). :func:`unit_energy` is the torch reference; ``vectorize.kernels.energy`` has the Triton
kernel of the same sum.
"""

from __future__ import annotations

import math

import torch

CLOSE, FAR = (1.0, 0.98), (32.0, 0.02)  # (sigma px, weight)


def unit_energy(rect: torch.Tensor, px: torch.Tensor, py: torch.Tensor, sigma: float) -> torch.Tensor:
    """``phi_sigma`` of rectangles ``rect [..., K, 5] = (cx, cy, theta, L, W)`` at points
    ``px, py [..., P]`` (broadcast over the leading dims): ``[..., K, P]``."""
    cx, cy, th, L, W = (t[..., None] for t in rect.unbind(-1))
    dx, dy = px[..., None, :] - cx, py[..., None, :] - cy
    c, s = torch.cos(th), torch.sin(th)
    u, v = dx * c + dy * s, -dx * s + dy * c
    k = 1.0 / (math.sqrt(2.0) * sigma)
    a = torch.erf((L / 2 - u) * k) + torch.erf((L / 2 + u) * k)
    b = torch.erf((W / 2 - v) * k) + torch.erf((W / 2 + v) * k)
    return 0.25 * a * b


def lines_to_rects(lines: torch.Tensor) -> torch.Tensor:
    """``(x1, y1, x2, y2, w) -> (cx, cy, theta, L, w)``."""
    x1, y1, x2, y2, w = lines.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, torch.atan2(y2 - y1, x2 - x1),
                        torch.hypot(x2 - x1, y2 - y1), w], -1)  # fmt: skip


def rects_to_lines(r: torch.Tensor) -> torch.Tensor:
    cx, cy, th, L, w = r.unbind(-1)
    hx, hy = torch.cos(th) * L / 2, torch.sin(th) * L / 2
    return torch.stack([cx - hx, cy - hy, cx + hx, cy + hy, w], -1)


def curve_rects(curves: torch.Tensor, k: int) -> torch.Tensor:
    """Each Bézier ``[..., 7]`` flattened into ``k`` rectangles ``[..., k, 5]``."""
    t = torch.linspace(0, 1, k + 1, device=curves.device, dtype=curves.dtype)[:, None]
    p0, p1, p2 = curves[..., None, 0:2], curves[..., None, 2:4], curves[..., None, 4:6]
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    a, b = pts[..., :-1, :], pts[..., 1:, :]
    w = curves[..., None, 6].expand(*a.shape[:-1])
    return lines_to_rects(torch.cat([a, b, w[..., None]], -1))


def two_range_energy(rect: torch.Tensor, q: torch.Tensor, weight: torch.Tensor | None = None,
                     coarse: int = 8, backend: str = "auto") -> torch.Tensor:  # fmt: skip
    """``E = sum_p w(p) q(p) [0.98 phi_1(p)] + 0.02 sum_cells q_cell phi_32(cell)`` per rectangle.

    ``rect [B, K, 5]``, residual ``q [B, H, W]`` (held fixed), optional per-rectangle pixel weights
    ``weight [B, K, H*W]``. The far range, smooth at the scale of 32 px, is evaluated on cells of
    ``coarse x coarse`` pixels (the cell sum of ``q`` at the cell centre). Returns ``[B, K]``.
    ``backend``: auto (the Triton kernel of ``vectorize.kernels.energy`` on CUDA, else torch
    autograd), triton or torch.
    """
    from papercore.kernels.triton_guard import resolve_backend

    use_triton = resolve_backend(backend, q.device) == "triton"
    B, H, W = q.shape
    dev, dt = q.device, rect.dtype
    yy, xx = torch.meshgrid(torch.arange(H, device=dev, dtype=dt) + 0.5, torch.arange(W, device=dev, dtype=dt) + 0.5,
                            indexing="ij")  # fmt: skip
    qf = q.reshape(B, 1, -1)
    r = qf * weight if weight is not None else qf
    if use_triton:
        from vectorize.kernels.energy import energy

        close = energy(rect, xx.reshape(-1), yy.reshape(-1), r, CLOSE[0], backend="triton")
    else:
        close = (unit_energy(rect, xx.reshape(-1), yy.reshape(-1), CLOSE[0]) * r).sum(-1)
    qc = torch.nn.functional.avg_pool2d(q[:, None], coarse).flatten(1) * coarse * coarse  # [B, cells]
    cy, cx = torch.meshgrid(torch.arange(H // coarse, device=dev, dtype=dt) * coarse + coarse / 2,
                            torch.arange(W // coarse, device=dev, dtype=dt) * coarse + coarse / 2, indexing="ij")  # fmt: skip
    if use_triton:
        far = energy(rect, cx.reshape(-1), cy.reshape(-1), qc[:, None], FAR[0], backend="triton")
    else:
        far = (unit_energy(rect, cx.reshape(-1), cy.reshape(-1), FAR[0]) * qc[:, None]).sum(-1)
    return CLOSE[1] * close + FAR[1] * far
