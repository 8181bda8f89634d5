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

from prodige import _bidir
from prodige.graph import Graph

__all__ = ["Paths", "find_paths", "path_distances", "pairwise_distances", "search_graph"]


@dataclass
class Paths:
    """Paths of a batch of pairs, as a flat edge list (``pair_of[k]`` is the pair of ``edge_ids[k]``)."""

    src: np.ndarray  # [B] source vertex of each pair
    dst: np.ndarray  # [B] target vertex
    edge_ids: np.ndarray  # [K] edges of all paths, by pair, each from the target to the source
    pair_of: np.ndarray  # [K]
    hops: np.ndarray  # [B] edges per path
    reachable: np.ndarray  # [B] a path exists (and was accepted)
    too_long: np.ndarray  # [B] hops > max_length (flagged or rejected)
    missing: np.ndarray  # [B] sampled-out edges on the path (soft mode)
    search_length: np.ndarray  # [B] float64 length of the path in the search weights (no M)


def _structure(graph: Graph):
    """CSR structure of the alive arcs (``indptr``, ``indices``, edge ids, sorted keys), cached on
    the graph until ``alive`` changes: a step only refreshes the arc costs."""
    alive = graph.alive
    stamp = np.packbits(alive).tobytes()
    cache = getattr(graph, "_search_cache", None)
    if cache is None or cache[0] != stamp:
        use = alive[graph.arc_eid]
        n = graph.n_vertices
        indptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(graph.arc_tail[use], minlength=n), out=indptr[1:])
        cache = (stamp, indptr, graph.arc_head[use].astype(np.int32), graph.arc_eid[use], graph.arc_key[use])
        graph._search_cache = cache
    return cache[1:]


def search_graph(graph: Graph, kept: np.ndarray, soft: bool, weights: np.ndarray | None = None):
    """The CSR matrix Dijkstra searches, and the sorted arc keys / edge ids of its entries.

    Every alive arc is an entry (the structure is cached); a sampled-out edge costs ``w + M`` in
    soft mode and ``inf`` (no edge) otherwise.
    """
    w = graph.weights().detach().double().numpy() if weights is None else weights
    indptr, indices, eid, keys = _structure(graph)
    cost = np.maximum(w[eid], 1e-300)  # csgraph treats exact zeros as no edge
    out = ~kept[eid]
    if soft:
        M = 2.0 * float(w[graph.alive].sum()) + 1.0
        cost += M * out
    else:
        cost[out] = np.inf
    n = graph.n_vertices
    return sp.csr_array((cost, indices, indptr), shape=(n, n)), keys, eid


def _backtrack(pred, row, start, stop, keys, eids, n, reverse=False):
    """Edge ids from ``start[i]`` back to ``stop[i]`` through the predecessor rows ``pred[row[i]]``,
    one numpy pass per hop over the still-active pairs. ``reverse``: the search ran on the
    transposed graph, so the arc walked is ``cur -> pred`` instead of ``pred -> cur``."""
    cur = np.asarray(start, dtype=np.int64).copy()
    active = np.flatnonzero(cur != stop)
    edge_chunks, pair_chunks, hop_chunks = [], [], []
    hop = 0
    while active.size:
        p = pred[row[active], cur[active]].astype(np.int64)
        key = cur[active] * n + p if reverse else p * n + cur[active]
        edge_chunks.append(eids[np.searchsorted(keys, key)])
        pair_chunks.append(active)
        hop_chunks.append(np.full(len(active), hop))
        cur[active] = p
        active = active[p != stop[active]]
        hop += 1
    if not edge_chunks:
        return (np.zeros(0, np.int64),) * 3
    return np.concatenate(edge_chunks), np.concatenate(pair_chunks), np.concatenate(hop_chunks)


def _meet(A, AT, src, dst, radius, max_candidates=np.inf):
    """Meet-in-the-middle search of the pairs ``(src[i], dst[i])``: two Dijkstra runs capped at
    ``limit=radius``, forward from the unique sources and backward (on ``AT``) from the unique
    targets, then the best arc ``(u, v)`` joining the two balls of each pair.

    Exact for the pairs it marks resolved: with ``r = radius (1 - 1e-9)``, if ``d(s, t) <= 2r`` the
    last vertex ``u`` of a shortest path with ``d(s, u) <= r`` and the next vertex ``v`` have
    ``d(v, t) < r``, so the arc ``(u, v)`` is a candidate; every candidate is a real walk, so a best
    candidate ``<= 2r`` is the shortest distance. Returns None when the balls hold more than
    ``max_candidates`` arcs (a full search is then cheaper).
    """
    fs, frow = np.unique(src, return_inverse=True)
    ft, trow = np.unique(dst, return_inverse=True)
    Df, Pf = dijkstra(A, directed=True, indices=fs, return_predecessors=True, limit=radius)
    Db, Pb = dijkstra(AT, directed=True, indices=ft, return_predecessors=True, limit=radius)
    deg_all = np.diff(A.indptr).astype(np.int64)
    srow, su = np.nonzero(np.isfinite(Df))  # the vertices reached from each unique source
    per_src = np.bincount(srow, minlength=len(fs))
    arcs_src = np.bincount(srow, weights=deg_all[su], minlength=len(fs))
    if float(arcs_src[frow].sum()) > max_candidates:  # the balls are too big: search these in full
        return None
    cnt = per_src[frow]  # per pair: (pair, u) for u in the ball of its source, without a [P, n] array
    pair = np.repeat(np.arange(len(src)), cnt)
    at = np.repeat((np.cumsum(per_src) - per_src)[frow] - (np.cumsum(cnt) - cnt), cnt) + np.arange(
        int(cnt.sum())
    )
    u = su[at]
    deg = deg_all[u]
    total = int(deg.sum())
    arc = np.repeat(A.indptr[u].astype(np.int64) - (np.cumsum(deg) - deg), deg) + np.arange(total)
    pair, u = np.repeat(pair, deg), np.repeat(u, deg)
    v = A.indices[arc]
    cost = Df[frow[pair], u] + A.data[arc] + Db[trow[pair], v]
    ok = np.flatnonzero(np.isfinite(cost))
    best = np.full(len(src), np.inf)
    bu, bv = np.zeros(len(src), np.int64), np.zeros(len(src), np.int64)
    if len(ok):
        pair, cost = pair[ok], cost[ok]  # pair is sorted: segmented minimum, first arc on ties
        start = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        m = np.minimum.reduceat(cost, start)
        best[pair[start]] = m
        hit = np.flatnonzero(cost == best[pair])
        keep = hit[np.r_[True, pair[hit][1:] != pair[hit][:-1]]]
        bu[pair[keep]], bv[pair[keep]] = u[ok[keep]], v[ok[keep]]
    resolved = best <= 2 * radius * (1 - 1e-9)
    return resolved, bu, bv, (Pf, frow), (Pb, trow)


def _initial_radius(A) -> float:
    """3/4 of the median arc cost (a sample of arcs; costs below ``inf``): a start of the radius
    schedule from which 2r covers paths of one or two typical arcs."""
    data = A.data[:: max(1, len(A.data) // 4096)]
    data = data[np.isfinite(data)]
    return 0.75 * float(np.median(data)) if len(data) else 1.0


def find_paths(
    graph: Graph,
    src,
    dst,
    kept: np.ndarray,
    *,
    soft: bool = False,
    max_length: int = 0,
    long_paths: str = "flag",
    method: str = "auto",
    meet_rounds: int = 8,
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
    method : {"auto", "full", "meet"}
        ``"full"``: one Dijkstra per unique source over the whole graph. ``"meet"``: capped
        forward/backward searches meeting in the middle (:func:`_meet`), radius growing 1.25x for
        ``meet_rounds`` rounds, then ``"full"`` for the pairs left; far cheaper when each source has
        few targets (random pairs), exact either way. ``"auto"``: meet when a source has <= 8
        targets on average. ``"bidirectional"``: a compiled (numba) bidirectional Dijkstra per
        pair, which settles only the vertices within about ``d(s, t) / 2`` of either end; ``"auto"``
        picks it for few targets per source on graphs of >= 1000 vertices when numba is installed.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise ValueError("src and dst must have one length")
    if method not in ("auto", "full", "meet", "bidirectional"):
        raise ValueError(f"method must be auto, full, meet or bidirectional, got {method!r}")
    if method == "bidirectional" and not _bidir.available():
        raise ValueError("method='bidirectional' needs numba: pip install numba (or use method='meet')")
    n = graph.n_vertices
    B = len(src)
    w = graph.weights().detach().double().numpy()
    A, keys, eids = search_graph(graph, kept, soft, w)
    if method == "auto":
        few = 8 * len(np.unique(src)) >= B
        method = "full" if not few else "bidirectional" if _bidir.available() and n >= 1000 else "meet"
    reachable = np.zeros(B, dtype=bool)
    pending = np.flatnonzero(src != dst)
    reachable[src == dst] = True
    edges, pairs, pos = [], [], []  # pos: place on the path counted from the target

    def record(done, u, v, pf, rf, pb, rb):
        """Paths ``s ~> u`` (forward predecessors), arc ``(u, v)``, ``v ~> t`` (backward ones)."""
        e1, p1, h1 = _backtrack(pf, rf, u, src[done], keys, eids, n)
        e3, p3, h3 = _backtrack(pb, rb, v, dst[done], keys, eids, n, reverse=True)
        mid = eids[np.searchsorted(keys, u * n + v)]
        n3 = np.bincount(p3, minlength=len(done))  # edges between v and the target
        edges.extend([e3, mid, e1])
        pairs.extend([done[p3], done, done[p1]])
        pos.extend([n3[p3] - 1 - h3, n3, n3[p1] + 1 + h1])
        reachable[done] = True

    if method in ("meet", "bidirectional") and len(pending):
        AT = A if not graph.directed else A.T.tocsr()
    if method == "bidirectional" and len(pending):
        d, u, v, pf, pb = _bidir.bidirectional(A, AT, src[pending], dst[pending])
        ok = np.isfinite(d)
        rows = np.flatnonzero(ok)
        record(pending[ok], u[ok], v[ok], pf, rows, pb, rows)
        pending = pending[:0]  # unreachable pairs stay unreachable
    if method == "meet" and len(pending):
        radius = _initial_radius(A)
        for _ in range(meet_rounds):
            # arcs of the balls worth enumerating: about the cost of full searches from the sources
            left, too_big = [], False
            for part in np.array_split(pending, -(-len(pending) // max(1, 10_000_000 // n))):
                # memory: [pairs, n] distance rows per chunk; work: about a full search per source
                cap = 0.5 * A.nnz * len(np.unique(src[part]))
                res = _meet(A, AT, src[part], dst[part], radius, cap)
                if res is None:
                    left.append(part)
                    too_big = True
                    continue
                ok, u, v, (Pf, frow), (Pb, trow) = res
                if ok.any():
                    record(part[ok], u[ok], v[ok], Pf, frow[ok], Pb, trow[ok])
                left.append(part[~ok])
            pending = np.concatenate(left)
            if too_big or not len(pending):
                break
            radius *= 1.25
    if len(pending):  # full Dijkstra from the unique sources of the pairs left
        sources, row = np.unique(src[pending], return_inverse=True)
        dist, pred = dijkstra(A, directed=True, indices=sources, return_predecessors=True)
        found = np.isfinite(dist[row, dst[pending]])
        e, p, h = _backtrack(pred, row[found], dst[pending][found], src[pending][found], keys, eids, n)
        edges.append(e)
        pairs.append(pending[found][p])
        pos.append(h)
        reachable[pending[found]] = True
    edge_ids, pair_of, pos = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (edges, pairs, pos))
    order = np.lexsort((pos, pair_of))  # by pair, each path from the target to the source
    edge_ids, pair_of = edge_ids[order], pair_of[order]
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
