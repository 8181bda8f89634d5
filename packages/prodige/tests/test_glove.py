import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra

from prodige import ProdigeConfig, ProdigeTrainConfig, fit_graph
from prodige.glove import (
    Cooccurrence,
    GloveTask,
    GloveVectors,
    cooccurrence,
    glove_weight,
    init_glove_graph,
    load_cooccurrence,
    nearest_words,
)
from prodige.graph import Graph
from prodige.paths import find_paths, path_distances


def test_cooccurrence_counts_by_hand():
    c = cooccurrence("a b a c".split(), n_words=3, window=2)
    assert c.words == ["a", "b", "c"]  # by frequency, then alphabetically
    X = c.X.toarray()
    # a-b at offsets 1 (twice: a b, b a) ; a-c at offset 1 and 3 (outside the window) ; b-c at offset 2
    ref = np.array([[0, 2, 1], [2, 0, 0.5], [1, 0.5, 0]])
    np.testing.assert_allclose(X, ref)  # the a-a pair at offset 2 is on the removed diagonal


def _small(n=7, seed=0):
    """A 7-word co-occurrence matrix and a graph with known biases."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 300, (n, n)).astype(float)
    X = np.triu(X, 1)
    X[0, 3] = 0  # a zero pair is not fitted
    X = X + X.T
    src, dst = np.triu_indices(n, 1)
    keep = rng.random(len(src)) < 0.5
    keep[: n - 1] = True  # connected (the first n - 1 pairs include 0-1, ..., 0-(n-1))
    g = Graph(n, src[keep], dst[keep], rng.uniform(0.2, 1.5, keep.sum()))
    return Cooccurrence(sp.csr_array(X), [str(i) for i in range(n)]), X, g


def _reference_objective(X, g, b):
    """Full weighted GloVe loss from scipy's Dijkstra on an independently built matrix."""
    w = g.weights().detach().double().numpy()
    A = sp.csr_array((w, (g.src, g.dst)), shape=(g.n_vertices,) * 2)
    D = dijkstra(A, directed=False)
    i, j = np.nonzero(X)
    f = np.minimum(1, X[i, j] / 100) ** 0.75
    return (f * (b[i] + b[j] - D[i, j] ** 2 - np.log(X[i, j])) ** 2).sum() / f.sum(), D


def test_glove_loss_and_objective_match_an_independent_computation():
    cooc, X, g = _small()
    task = GloveTask(cooc)
    task.init_dense(g)
    b = task.bias().detach().numpy()
    ref, D = _reference_objective(X, g, b)
    assert abs(task.objective(g) - ref) < 1e-9
    # every row, all its columns: the batch loss of row i is sum_j f_ij / F_i * r_ij^2, and rows drawn
    # with probability F_i / F make the expected batch loss the full objective
    rows_loss = []
    for r in range(7):
        j = np.flatnonzero(X[r])
        f = glove_weight(X[r, j])
        rows_loss.append((f / f.sum() * (b[r] + b[j] - D[r, j] ** 2 - np.log(X[r, j])) ** 2).sum())
    assert abs(np.dot(task.row_p, rows_loss) - ref) < 1e-9
    batch = task.sample(np.random.default_rng(0), 5, 0)
    paths = find_paths(g, batch.src, batch.dst, g.eval_kept())
    d, _ = path_distances(g, paths)
    loss, per = task.loss(d, batch)
    rows = np.random.default_rng(0).choice(7, 5, p=task.row_p)  # the sampler's first draw
    assert batch.n_rows == 5 and abs(float(loss.detach()) - np.mean([rows_loss[r] for r in rows])) < 1e-9
    assert per.shape == d.shape and not (batch.src == batch.dst).any()
    assert 0 not in batch.dst[batch.src == 3] and 3 not in batch.dst[batch.src == 0]  # zero count


def test_bias_init_is_the_weighted_least_squares_solution():
    cooc, X, g = _small(seed=1)
    task = GloveTask(cooc)
    task.init_dense(g)
    _, D = _reference_objective(X, g, np.zeros(7))
    i, j = np.nonzero(X)
    sw = np.sqrt(glove_weight(X[i, j]))
    A = np.zeros((len(i), 7))
    A[np.arange(len(i)), i] += sw
    A[np.arange(len(i)), j] += sw
    ref = np.linalg.lstsq(A, sw * (np.log(X[i, j]) + D[i, j] ** 2), rcond=None)[0]
    np.testing.assert_allclose(task.bias().detach().numpy(), ref, atol=1e-6)


def test_gradient_of_the_glove_loss_flows_to_path_weights_and_biases():
    cooc, X, g = _small(seed=2)
    task = GloveTask(cooc)
    task.init_dense(g)
    batch = task.sample(np.random.default_rng(1), 1, 0)
    paths = find_paths(g, batch.src, batch.dst, g.eval_kept())
    d, _ = path_distances(g, paths)
    loss, _ = task.loss(d, batch)
    gw, gb = torch.autograd.grad(loss, [g.edges.weight, task.bias()])
    used = np.unique(paths.edge_ids)
    nz = np.flatnonzero(gw.to_dense()[1:, 0].numpy())
    assert set(nz) <= set(used) and len(nz) > 0
    assert gb[batch.src[0]] != 0


def test_fit_lowers_the_objective_and_vectors_baseline_fits_exact_data():
    cooc = load_cooccurrence("synthetic", n_words=48, window=3)
    task = GloveTask(cooc)
    cfg = ProdigeConfig(knn=8, random_edges=4, params_per_vertex=8, prune_every=40, sparsity_ramp=100)
    torch.manual_seed(0)
    g = init_glove_graph(cooc, cfg, dim=8)
    task.init_dense(g)
    before = task.objective(g)
    fit_graph(g, task, cfg, ProdigeTrainConfig(steps=160, finetune_steps=40, batch_size=8, log_every=100))
    assert g.params_per_vertex() <= 8 and task.objective(g) < 1.5 * before  # pruned to a fifth, still fits
    for w, _ in nearest_words(g, cooc, cooc.words[0], 3):
        assert w in cooc.words and w != cooc.words[0]
    # exact rank-2 data: X = exp(x_i . x_j + b_i + b_j) is fitted to ~0 by GloveVectors(dim 2)
    rng = np.random.default_rng(0)
    x, b = rng.normal(size=(20, 2)), rng.normal(size=20) + 3
    Xe = np.exp(x @ x.T + b[:, None] + b[None])
    np.fill_diagonal(Xe, 0)
    vt = GloveTask(Cooccurrence(sp.csr_array(Xe), [str(i) for i in range(20)]))
    start = GloveVectors(20, 2).objective(vt)
    assert GloveVectors(20, 2).fit(vt, steps=1500).objective(vt) < min(1e-2, 1e-3 * start)


def test_load_cooccurrence_checks(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0, 1.0], [2.0, 0]]))
    with pytest.raises(ValueError, match="not symmetric"):
        load_cooccurrence(str(tmp_path / "x.npy"))
    with pytest.raises(ValueError, match="use stdlib"):
        load_cooccurrence("corpus.csv")
    (tmp_path / "t.txt").write_text("The cat sat. The dog sat!")
    c = load_cooccurrence(str(tmp_path / "t.txt"), n_words=10, window=1)
    assert c.words[:2] == ["sat", "the"] and c.X.toarray().sum() == 2 * 5  # 5 adjacent pairs, both ways
