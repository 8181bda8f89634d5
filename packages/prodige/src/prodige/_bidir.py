r"""Bidirectional Dijkstra per (source, target) pair, compiled with numba (optional dependency).

For each pair a forward search from ``s`` (arcs of ``A``) and a backward search from ``t`` (arcs of
``A^T``) alternate, always expanding the side with the smaller heap top. Relaxing an arc that
joins the two searched regions updates the best meeting length :math:`\mu`; the search stops when
:math:`top_f + top_b \ge \mu` (the classic criterion: no unexplored path can be shorter), and a
label :math:`\ell` is not queued when :math:`\ell + top_{other} \ge \mu` (no path through it can win). It
settles only the vertices closer than about :math:`d(s,t)/2` to either end, instead of the whole
graph. Each pair writes its predecessor rows (pairs run one after another), which
:func:`prodige.paths._backtrack` walks like scipy's.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def available() -> bool:
    """numba is installed (imported only when a search first needs it: it costs ~1 s)."""
    return importlib.util.find_spec("numba") is not None


def _kernels():
    from prodige._bidir_kernels import _batch

    return _batch


def bidirectional(A, AT, src: np.ndarray, dst: np.ndarray):
    """Shortest ``s -> t`` lengths of the pairs (``src != dst``) on CSR ``A`` (``AT`` its transpose;
    ``inf`` costs are no arc). Returns ``(d, u, v, pred_f, pred_b)``: the path is ``s ~> u`` through
    ``pred_f[i]``, the arc ``(u, v)``, then ``v ~> t`` through ``pred_b[i]``; ``d = inf`` and
    ``u = v = -1`` when ``t`` is unreachable."""
    return _kernels()(A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, AT.indptr.astype(np.int64),
                  AT.indices.astype(np.int64), AT.data, src.astype(np.int64), dst.astype(np.int64),
                  A.shape[0])  # fmt: skip
