import numpy as np
import torch

from prodige import ProdigeConfig
from prodige.graph import Graph
from prodige.objective import hierarchical_quantiles, path_term, prior_penalty, sparsity_weight
from prodige.recsys import RecommendationTask, hierarchical_feedback, rank_metrics


def test_rank_metrics_by_hand():
    pos = np.array([0.9, 0.1, 0.5])
    neg = np.array([[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.6, 0.7, 0.1]])  # ranks 0, 3, 2
    m = rank_metrics(pos, neg, ks=(1, 3))
    assert m["HR@1"] == 1 / 3 and m["HR@3"] == 2 / 3
    assert abs(m["NDCG@3"] - (1 + 1 / np.log2(4)) / 3) < 1e-12


def test_hierarchical_feedback_split():
    fb = hierarchical_feedback(n_users=50, n_items=150, per_user=10, seed=0)
    assert len(fb.train) == 50 * 9 and fb.test_negatives.shape == (50, 100)
    for u in range(50):
        seen = set(fb.train[fb.train[:, 0] == u, 1]) | {fb.test_item[u]}
        assert not seen & set(fb.test_negatives[u])  # negatives were never interacted with
        assert fb.test_item[u] not in set(fb.train[fb.train[:, 0] == u, 1])


def test_recommendation_loss_is_sampled_softmax():
    fb = hierarchical_feedback(n_users=20, n_items=200, per_user=8, seed=0)
    task = RecommendationTask(fb, positives=2, negatives=3)
    b = task.sample(np.random.default_rng(0), 4, 0)
    d = torch.rand(len(b.src), dtype=torch.float64)
    loss, per = task.loss(d, b)
    D = d.view(4, 5)
    ref = np.mean(
        [
            -np.log(np.exp(-D[i, p]) / (np.exp(-D[i, p]) + np.exp(-D[i, 2:]).sum()))
            for i in range(4)
            for p in range(2)
        ]
    )
    assert abs(float(loss) - ref) < 1e-12 and per.shape == d.shape


def test_reinforce_surrogate_gradient():
    """d/d theta_p of mean((L_i - b) log p(path_i)) is (L_i - b)(1 - p_e)/B per use of edge e on path i."""
    g = Graph(3, [0, 1], [1, 2], [1.0, 1.0], init_p=0.7)
    cfg = ProdigeConfig(logp_term="reinforce")
    rows = g.edges.lookup(torch.tensor([0, 1, 1]))
    ls = torch.nn.functional.logsigmoid(rows[:, 1]).double()
    logp = torch.stack([ls[0], ls[1] + ls[2]])  # path 2 uses edge 1 twice
    L = torch.tensor([2.0, 5.0], dtype=torch.float64)
    term = path_term(cfg, logp, L, np.array([True, True]), g)  # first step: baseline = batch mean 3.5
    (grad,) = torch.autograd.grad(term, g.edges.weight)
    q = 1 - 0.7
    np.testing.assert_allclose(
        grad.to_dense()[1:, 1].numpy(), [(2 - 3.5) * q / 2, 2 * (5 - 3.5) * q / 2], rtol=1e-5
    )
    assert abs(float(g.dense.baseline) - 3.5) < 1e-12  # running mean for the next step
    like = path_term(ProdigeConfig(), logp, L, np.array([True, True]), g)  # the authors' code
    assert abs(float(like) + float(logp.mean())) < 1e-12


def test_priors_and_lambda_ramp():
    g = Graph(4, [0, 1, 2, 0], [1, 2, 3, 3], np.ones(4), probs=[0.2, 0.4, 0.6, 0.8])
    rng = np.random.default_rng(0)
    assert abs(float(prior_penalty(g, ProdigeConfig(), rng)) - 0.5) < 1e-6
    q = hierarchical_quantiles(4, 0.25, 0)
    assert q.tolist() == [0, 0, 0, 1]
    h = prior_penalty(g, ProdigeConfig(prior="hierarchical", prior_rate=0.25), rng)
    assert abs(float(h) - np.mean((np.array([0.2, 0.4, 0.6, 0.8]) - q) ** 2)) < 1e-6
    cfg = ProdigeConfig(sparsity=2.0, sparsity_ramp=100)
    assert sparsity_weight(cfg, 50, g) == 1.0
    g.edges.alive[0] = False  # lambda follows the graph's size
    assert sparsity_weight(cfg, 500, g) == 2.0 * 3 / 4
