r"""Shortest paths on one sampled graph, and their differentiable lengths.

1. ``scipy.sparse.csgraph.dijkstra`` with predecessors runs once per *unique* source of the batch
   on the sampled graph (``kept`` edges). In soft mode every alive edge is searched, a sampled-out
   one at cost :math:`w_e + M` with :math:`M > \sum_e w_e`, so the search minimises
   (number of missing edges, length) lexicographically and a path always exists while the alive
   graph is connected.
2. Paths are backtracked through the predecessor rows, vectorised over the batch (one numpy pass
   per hop over the still-active pairs); each arc ``(pred, cur)`` is mapped to its edge id by a
   binary search in the sorted arc keys.
3. :func:`path_distances` recomputes :math:`d_G(s, t) = \sum_{e \in \pi(s,t)} \operatorname{softplus}(\theta^w_e)`
   and :math:`\log p(\pi) = \sum_{e \in \pi} \log\sigma(\theta^p_e)` in torch, so
   :math:`\partial d / \partial \theta^w_e = \sigma(\theta^w_e)` on the path and 0 elsewhere. Pairs
   without a path get the learned default distance.

``max_length`` never truncates: a longer path is kept whole and flagged (``"flag"``), treated as
unreachable (``"reject"``), or raises (``"error"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import dijkstra

from prodige.graph import Graph

__all__ = ["Paths", "find_paths", "path_distances", "pairwise_distances", "search_graph"]


@dataclass
class Paths:
    """Paths of a batch of pairs, as a flat edge list (``pair_of[k]`` is the pair of ``edge_ids[k]``)."""

    src: np.ndarray  # [B] source vertex of each pair
    dst: np.ndarray  # [B] target vertex
    edge_ids: np.ndarray  # [K] edges of all paths, target side first
    pair_of: np.ndarray  # [K]
    hops: np.ndarray  # [B] edges per path
    reachable: np.ndarray  # [B] a path exists (and was accepted)
    too_long: np.ndarray  # [B] hops > max_length (flagged or rejected)
    missing: np.ndarray  # [B] sampled-out edges on the path (soft mode)
    search_length: np.ndarray  # [B] float64 length of the path in the search weights (no M)


def search_graph(graph: Graph, kept: np.ndarray, soft: bool, weights: np.ndarray | None = None):
    """The CSR matrix Dijkstra searches, and the sorted arc keys / edge ids of its entries."""
    w = graph.weights().detach().double().numpy() if weights is None else weights
    use = graph.alive[graph.arc_eid] if soft else kept[graph.arc_eid]
    eid = graph.arc_eid[use]
    cost = np.maximum(w[eid], 1e-300)  # csgraph treats exact zeros as no edge
    if soft:
        M = 2.0 * float(w[graph.alive].sum()) + 1.0
        cost = cost + M * ~kept[eid]
    n = graph.n_vertices
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(graph.arc_tail[use], minlength=n), out=indptr[1:])
    A = sp.csr_array((cost, graph.arc_head[use].astype(np.int32), indptr), shape=(n, n))
    return A, graph.arc_key[use], eid


def find_paths(
    graph: Graph,
    src,
    dst,
    kept: np.ndarray,
    *,
    soft: bool = False,
    max_length: int = 0,
    long_paths: str = "flag",
) -> Paths:
    """Shortest paths from ``src[i]`` to ``dst[i]`` in the graph of the ``kept`` edges.

    Parameters
    ----------
    graph : Graph
    src, dst : int arrays ``[B]``
    kept : bool array ``[E]``
        The sampled graph (:meth:`Graph.sample_kept`) or the eval graph (:meth:`Graph.eval_kept`).
    soft : bool
        Search every alive edge, sampled-out ones at cost ``w + M`` (fewest missing edges first).
    max_length, long_paths
        Paths with more than ``max_length`` edges (0: no limit) are ``"flag"`` ged, ``"reject"`` ed
        (unreachable) or an ``"error"``.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise ValueError("src and dst must have one length")
    n = graph.n_vertices
    w = graph.weights().detach().double().numpy()
    A, keys, eids = search_graph(graph, kept, soft, w)
    sources, row = np.unique(src, return_inverse=True)
    dist, pred = dijkstra(A, directed=True, indices=sources, return_predecessors=True)
    B = len(src)
    reachable = np.isfinite(dist[row, dst])
    cur = dst.copy()
    active = np.flatnonzero(reachable & (src != dst))
    edge_chunks, pair_chunks = [], []
    while active.size:
        p = pred[row[active], cur[active]].astype(np.int64)
        pos = np.searchsorted(keys, p * n + cur[active])
        edge_chunks.append(eids[pos])
        pair_chunks.append(active)
        cur[active] = p
        active = active[p != src[active]]
    edge_ids = np.concatenate(edge_chunks) if edge_chunks else np.zeros(0, np.int64)
    pair_of = np.concatenate(pair_chunks) if pair_chunks else np.zeros(0, np.int64)
    hops = np.bincount(pair_of, minlength=B)
    missing = np.bincount(pair_of, weights=~kept[edge_ids], minlength=B).astype(np.int64)
    search_length = np.bincount(pair_of, weights=w[edge_ids], minlength=B)
    too_long = (hops > max_length) if max_length else np.zeros(B, dtype=bool)
    if too_long.any():
        if long_paths == "error":
            i = int(np.argmax(too_long))
            raise ValueError(
                f"{int(too_long.sum())} path(s) exceed max_length={max_length} (e.g. {src[i]} -> {dst[i]}: "
                f"{hops[i]} edges): raise max_length or use long_paths='flag'"
            )
        if long_paths == "reject":
            reachable = reachable & ~too_long
            ok = ~too_long[pair_of]
            edge_ids, pair_of = edge_ids[ok], pair_of[ok]
    return Paths(src, dst, edge_ids, pair_of, hops, reachable, too_long, missing, search_length)


def path_distances(graph: Graph, paths: Paths, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable path lengths ``d`` and log-probabilities ``log p(path)`` (``[B]`` each).

    Unreachable (or rejected) pairs get ``graph.default_distance`` and ``log p = 0``.
    """
    B = len(paths.src)
    eid = torch.from_numpy(paths.edge_ids)
    rows = graph.edges.lookup(eid)  # [K, 2], sparse gradient
    at = torch.from_numpy(paths.pair_of)
    d = torch.zeros(B, dtype=dtype).index_add(0, at, F.softplus(rows[:, 0]).to(dtype))
    logp = torch.zeros(B, dtype=dtype).index_add(0, at, F.logsigmoid(rows[:, 1]).to(dtype))
    ok = torch.from_numpy(paths.reachable)
    d = torch.where(ok, d, graph.default_distance.to(dtype))
    return d, logp


@torch.no_grad()
def pairwise_distances(
    graph: Graph, sources=None, targets=None, kept: np.ndarray | None = None
) -> np.ndarray:
    """Eval-mode (``p > 1/2``) shortest-path distances ``[len(sources), len(targets)]`` (float64);
    unreachable pairs get the default distance. Defaults: every data vertex."""
    kept = graph.eval_kept() if kept is None else kept
    A, _, _ = search_graph(graph, kept, soft=False)
    sources = np.arange(graph.n_data) if sources is None else np.asarray(sources)
    targets = np.arange(graph.n_data) if targets is None else np.asarray(targets)
    if not graph.directed and len(targets) < len(sources):  # fewer searches from the other side
        D = dijkstra(A, directed=True, indices=targets)[:, sources].T
    else:
        D = dijkstra(A, directed=True, indices=sources)[:, targets]
    D[~np.isfinite(D)] = float(graph.default_distance)
    return D
