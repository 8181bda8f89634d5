r"""Baseline maps scored in the same harness as W2GN.

* :class:`BuresMap`: the linear (Gaussian) map fitted to the means and covariances of samples of P
  and Q (the W2 benchmark's [L] baseline);
* :func:`emd_map`: POT's exact discrete OT between ``n`` points of P and ``n`` of Q, then the
  barycentric projection :math:`\hat T(x_i) = n \sum_j \pi_{ij} y_j` (in-sample: it maps the very
  points it was solved on);
* identity and the constant map :math:`x \mapsto \mathbb{E}Q` (L2-UVP 100 by construction).
"""

from __future__ import annotations

import torch

from papercore.ot.gaussian import bures_map
from papercore.ot.samplers import Sampler

__all__ = ["BuresMap", "emd_map"]


class BuresMap:
    """:math:`x \\mapsto A x + b`, the OT map between Gaussians with the samples' moments."""

    def __init__(self, P: Sampler, Q: Sampler, n: int = 2**15, seed: int = 0, backend: str = "torch"):
        mp, sp = P.moments(n, seed)
        mq, sq = Q.moments(n, seed + 1)
        a, b = bures_map(mp, sp, mq, sq, backend=backend)
        ai, bi = bures_map(mq, sq, mp, sp, backend=backend)
        self.a, self.b, self.a_inv, self.b_inv = (t.float() for t in (a, b, ai, bi))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.to(x).T + self.b.to(x)

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.a_inv.to(y).T + self.b_inv.to(y)


def emd_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Barycentric projection of the exact OT plan between the point clouds ``x`` and ``y`` (POT ``emd``)."""
    import ot

    xa, ya = x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
    plan = ot.emd(ot.unif(len(xa)), ot.unif(len(ya)), ot.dist(xa, ya), numItermax=10_000_000)
    return torch.from_numpy(len(xa) * plan @ ya).to(x)
