import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra

from prodige.graph import Graph
from prodige.paths import find_paths, pairwise_distances, path_distances


def random_graph(n=60, m=240, seed=0, p=None, directed=False):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, m) if p is None else np.full(m, p)
    return Graph(n, rng.integers(0, n, m), rng.integers(0, n, m), rng.uniform(0.1, 2.0, m),
                 probs=probs, directed=directed, default_distance=7.0)  # fmt: skip


def dense_dijkstra(g: Graph, kept: np.ndarray) -> np.ndarray:
    """Independent reference: a scipy matrix built from the edge list, no code under test."""
    w = torch.nn.functional.softplus(g.theta[:, 0].detach()).double().numpy()
    A = sp.coo_matrix((w[kept], (g.src[kept], g.dst[kept])), shape=(g.n_vertices,) * 2).tocsr()
    return dijkstra(A, directed=g.directed)


@pytest.mark.parametrize("directed", [False, True])
def test_eval_distances_equal_scipy_dijkstra(directed):
    g = random_graph(directed=directed, seed=1)
    kept = g.eval_kept()
    ref = dense_dijkstra(g, kept)
    rng = np.random.default_rng(2)
    src, dst = rng.integers(0, 60, 500), rng.integers(0, 60, 500)
    d, _ = path_distances(g, find_paths(g, src, dst, kept))
    r = ref[src, dst]
    ok = np.isfinite(r)
    assert ok.sum() > 100 and (~ok).sum() > 0  # both reachable and unreachable pairs are tested
    np.testing.assert_allclose(d.detach().numpy()[ok], r[ok], rtol=1e-6)
    assert np.all(d.detach().numpy()[~ok] == np.float32(7.0))  # the default distance
    D = pairwise_distances(g)
    np.testing.assert_allclose(D[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-6)


def test_paths_are_walks_and_gradients_are_sigmoid_on_the_path():
    g = random_graph(seed=3, p=0.99)
    kept = g.eval_kept()
    src, dst = np.array([0, 5, 9, 9]), np.array([17, 33, 41, 9])
    paths = find_paths(g, src, dst, kept)
    assert paths.reachable.all() and paths.hops[3] == 0
    for i in range(3):  # the edges of pair i chain from dst back to src
        e = paths.edge_ids[paths.pair_of == i]
        cur = dst[i]
        for eid in e:
            a, b = g.src[eid], g.dst[eid]
            assert cur in (a, b)
            cur = a if cur == b else b
        assert cur == src[i]
    d, logp = path_distances(g, paths)
    (gw,) = torch.autograd.grad(d[1], g.edges.weight, retain_graph=True)
    on = paths.edge_ids[paths.pair_of == 1]
    expect = torch.zeros(g.n_edges)
    expect[on] = torch.sigmoid(g.theta[on, 0].detach())
    np.testing.assert_allclose(gw.to_dense()[1:, 0].numpy(), expect.numpy(), rtol=1e-6)
    assert gw.to_dense()[1:, 1].abs().sum() == 0 and gw.to_dense()[0].abs().sum() == 0
    (gp,) = torch.autograd.grad(logp[1], g.edges.weight)
    expect_p = torch.zeros(g.n_edges)
    expect_p[on] = torch.sigmoid(-g.theta[on, 1].detach())  # d log sigmoid(x) / dx = 1 - sigmoid(x)
    np.testing.assert_allclose(gp.to_dense()[1:, 1].numpy(), expect_p.numpy(), rtol=1e-5)
    ref = torch.nn.functional.logsigmoid(g.theta[on, 1].detach()).double().sum()
    assert abs(float(logp[1]) - float(ref)) < 1e-9


def test_soft_mode_uses_fewest_missing_edges():
    g = random_graph(n=50, m=150, seed=4, p=0.35)
    kept = g.sample_kept(torch.Generator().manual_seed(0))
    hard = find_paths(g, np.zeros(50, int), np.arange(50), kept)
    assert not hard.reachable.all()  # the sampled graph is disconnected
    soft = find_paths(g, np.zeros(50, int), np.arange(50), kept, soft=True)
    # independent count: cost 1 per missing edge, a tiny cost per kept edge
    c = np.where(kept, 1e-6, 1.0)
    A = sp.coo_matrix((c[g.alive], (g.src, g.dst)), shape=(50, 50)).tocsr()
    fewest = np.floor(dijkstra(A, directed=False, indices=0) + 1e-9)
    reach = np.isfinite(fewest)
    assert soft.reachable[reach].all()
    np.testing.assert_array_equal(soft.missing[reach], fewest[reach].astype(int))
    assert (soft.missing[hard.reachable] == 0).all()


def test_pruning_at_half_keeps_eval_distances_and_parameter_count():
    g = random_graph(seed=5)
    before = pairwise_distances(g)
    small = g.pruned(0.5)
    assert small.n_edges == g.n_kept() < g.n_edges
    np.testing.assert_array_equal(pairwise_distances(small), before)
    # V + 2E + 1: offsets per vertex, (target id, weight) per kept edge, the default distance
    assert small.num_parameters() == 60 + 2 * int((g.probs() > 0.5).sum()) + 1
    assert small.bits_per_vertex() == pytest.approx(32 * (60 + 2 * small.n_edges) / 60)


def test_max_length_flags_rejects_or_raises_never_truncates():
    n = 10  # a chain 0 - 1 - ... - 9
    g = Graph(n, np.arange(n - 1), np.arange(1, n), np.ones(n - 1), init_p=0.99, default_distance=100.0)
    kept = g.eval_kept()
    flag = find_paths(g, [0, 0], [9, 2], kept, max_length=3, long_paths="flag")
    d, _ = path_distances(g, flag)
    assert flag.too_long.tolist() == [True, False] and flag.hops.tolist() == [9, 2]
    w = float(torch.nn.functional.softplus(g.theta[0, 0].detach()))
    np.testing.assert_allclose(d.detach().numpy(), [9 * w, 2 * w], rtol=1e-6)  # whole path, not 3 edges
    rej = find_paths(g, [0, 0], [9, 2], kept, max_length=3, long_paths="reject")
    d, _ = path_distances(g, rej)
    assert rej.reachable.tolist() == [False, True] and float(d[0]) == 100.0
    with pytest.raises(ValueError, match="exceed max_length=3"):
        find_paths(g, [0], [9], kept, max_length=3, long_paths="error")


def _chains(g, paths, src, dst):
    """Each pair's edges walk from its target back to its source (directed: against the arcs)."""
    for i in np.flatnonzero(paths.reachable):
        cur = dst[i]
        for eid in paths.edge_ids[paths.pair_of == i]:
            a, b = g.src[eid], g.dst[eid]
            assert cur == b or (not g.directed and cur == a)
            cur = a if cur == b else b
        assert cur == src[i]


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("method,rounds", [("meet", 1), ("meet", 8), ("bidirectional", 0)])
def test_meet_in_the_middle_equals_dijkstra(directed, method, rounds):
    """Capped forward/backward searches (one round leaves far pairs to the full search), and the
    compiled bidirectional Dijkstra (numba)."""
    if method == "bidirectional":
        pytest.importorskip("numba")
    g = random_graph(n=200, m=900, directed=directed, seed=4)
    kept = g.eval_kept()
    ref = dense_dijkstra(g, kept)
    rng = np.random.default_rng(5)
    src, dst = rng.integers(0, 200, 300), rng.integers(0, 200, 300)
    src[:3] = dst[:3]  # s == t
    paths = find_paths(g, src, dst, kept, method=method, meet_rounds=rounds)
    r = ref[src, dst]
    ok = np.isfinite(r)
    assert ok.sum() > 150 and (~ok).sum() > 0
    np.testing.assert_array_equal(paths.reachable, ok)
    np.testing.assert_allclose(paths.search_length[ok], r[ok], rtol=1e-9, atol=1e-12)
    d, _ = path_distances(g, paths)
    np.testing.assert_allclose(d.detach().numpy()[ok], r[ok], rtol=1e-6)
    _chains(g, paths, src, dst)
    soft = [find_paths(g, src, dst, g.sample_kept(torch.Generator().manual_seed(0)), soft=True, method=m)
            for m in (method, "full")]  # fmt: skip
    np.testing.assert_array_equal(soft[0].missing, soft[1].missing)  # fewest missing edges, then length
    np.testing.assert_allclose(soft[0].search_length, soft[1].search_length, rtol=1e-9)
