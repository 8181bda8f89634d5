r"""Ground-truth distance-to-feature fields and DEF's scaling convention.

For a surface point :math:`p` the field is

.. math::  d(p) = \min\Big(\min_{c \in \mathcal C(p)} \operatorname{dist}(p, c),\; d_{\max}\Big),

with two choices of the curve set :math:`\mathcal C(p)`:

* ``rule="surface"`` (DEF's annotator): only the curves that bound the surface patch containing
  :math:`p` (adjacency at depth 1). A patch with no such curve (a sphere, or a patch cut away from
  its curves) gets :math:`d_{\max}`;
* ``rule="global"``: every sharp curve of the shape. It differs from the first on thin walls and
  across gaps, where the nearest curve lies "through the air" on another patch.
"""

from __future__ import annotations

import numpy as np
import torch

from def3d.cad import CADShape
from papercore.geometry import distance_to_edges

__all__ = ["annotate", "def_scale"]


def annotate(points, surface, shape: CADShape, *, rule: str = "surface", upper: float = 1.0) -> torch.Tensor:
    """The clipped distance of each point ``[n, 3]`` on patch ``surface [n]`` to the sharp curves of ``shape``.

    Returns float64 ``[n]`` in ``[0, upper]``.
    """
    p = torch.as_tensor(points, dtype=torch.float64)
    s = torch.as_tensor(surface, dtype=torch.long)
    if rule == "global":
        edges = shape.edges
        d = distance_to_edges(p, edges) if edges else torch.full((len(p),), float("inf"), dtype=torch.float64)
        return d.clamp_max(upper)
    if rule != "surface":
        raise ValueError(f"rule must be 'surface' or 'global', got {rule!r}")
    d = torch.full((len(p),), float(upper), dtype=torch.float64)
    for sid in torch.unique(s).tolist():
        edges = [c.edge for c in shape.curves if sid in c.surfaces]
        m = s == sid
        if edges and sid >= 0:
            d[m] = distance_to_edges(p[m], edges).clamp_max(upper)
    return d


def def_scale(shape: CADShape, *, quantile: float = 0.25, target: float = 1.0) -> float:
    r"""DEF's scale factor: the one that makes the ``quantile`` of the curve lengths equal ``target``.

    DEF rescales every mesh so that the 25% quantile of its sharp-curve lengths is
    :math:`8 \times 0.125 = 1` (the distance upper bound), so that patches at resolution
    :math:`r` see curves of comparable length in units of :math:`r`.
    """
    lengths = shape.curve_lengths()
    if len(lengths) == 0:
        return 1.0
    return float(target / np.quantile(lengths, quantile))
