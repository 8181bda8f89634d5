r"""The PRODIGE objective: task loss, path log-probability term, sparsity prior.

The paper (§2) learns the distribution over graphs :math:`p(G \mid \theta) = \prod_e p_e^{[e \in G]}
(1 - p_e)^{[e \notin G]}` by minimising

.. math::

    \mathcal{L}(\theta) = \mathbb{E}_{G \sim p(G \mid \theta)}\big[L(d_G; \theta)\big]
    + \lambda\, \frac{1}{|E|} \sum_e p_e ,

and estimates the gradient with the log-derivative (REINFORCE) trick,

.. math::

    \nabla_\theta \mathbb{E}_G[L] = \mathbb{E}_G\big[\nabla_\theta L(d_G) + L(d_G)\,
    \nabla_\theta \log p(G \mid \theta)\big].

The first term flows through the recomputed path lengths (weights only). For the second, a pair's
distance depends on the edges of its shortest path, so each pair keeps only the factors of its
path: ``logp_term="reinforce"`` is the surrogate :math:`\frac1B \sum_i (L_i - b)\log p(\pi_i)`
with :math:`L_i` detached and :math:`b` a running mean of the loss (a baseline: unbiased for the
path-restricted score, lower variance). Dropping the factors of edges off the path makes it a
biased but far lower-variance estimate of the full score.

The authors' code (``logp_term="likelihood"``, the default, as in their notebooks) instead adds
:math:`-\frac1B \sum_i \log p(\pi_i)`: an *unweighted* log-likelihood of the edges the shortest
paths used, i.e. the REINFORCE surrogate with every :math:`L_i - b` replaced by :math:`-1`. It is
not an estimate of :math:`\nabla \mathbb{E}_G[L]`: it rewards edges for being used, and balances
the prior, which pushes every edge down. Both are implemented; the benchmark uses the code's.

The sparsity prior :math:`R` is the expected kept fraction :math:`\frac1{|S|}\sum_{e \in S} p_e`
over a random sample :math:`S` of alive edges (an L0 relaxation, Louizos et al. 2018), or the
hierarchical prior: the mean squared gap between the sorted :math:`p_S` and the quantiles of
Bernoulli(rate) (or Beta(s·rate, s·(1 − rate))). Its weight ramps linearly and follows the
graph's size: :math:`\lambda(t) = \lambda \min(1, t / T_{ramp})\, |E_{alive}| / |E_0|`.
"""

from __future__ import annotations

import numpy as np
import torch

from prodige.config import ProdigeConfig
from prodige.graph import Graph

__all__ = ["path_term", "prior_penalty", "sparsity_weight", "hierarchical_quantiles"]


def sparsity_weight(cfg: ProdigeConfig, step: int, graph: Graph) -> float:
    """:math:`\\lambda(t)` of step ``step``."""
    ramp = 1.0 if cfg.sparsity_ramp == 0 else min(1.0, step / cfg.sparsity_ramp)
    return cfg.sparsity * ramp * int(graph.edges.alive.sum()) / graph.n_initial_edges


def hierarchical_quantiles(n: int, rate: float, concentration: float) -> np.ndarray:
    """Quantiles at ``(i + 1/2) / n`` of Bernoulli(rate) (``concentration = 0``) or of
    Beta(s·rate, s·(1 − rate))."""
    u = (np.arange(n) + 0.5) / n
    if concentration == 0:
        return (u > 1 - rate).astype(np.float64)
    from scipy.stats import beta

    return beta.ppf(u, concentration * rate, concentration * (1 - rate))


def prior_penalty(graph: Graph, cfg: ProdigeConfig, rng: np.random.Generator) -> torch.Tensor:
    """The sparsity prior on a sample of ``cfg.prior_edges`` alive edges (all when 0)."""
    alive = np.flatnonzero(graph.alive)
    if cfg.free_edge and len(alive):
        alive = alive[~_most_probable_edge(graph, alive)]
    if len(alive) == 0:
        return torch.zeros((), dtype=torch.float64)
    if cfg.prior_edges and len(alive) > cfg.prior_edges:
        alive = np.sort(rng.choice(alive, cfg.prior_edges, replace=False))
    p = torch.sigmoid(graph.edges.lookup(torch.from_numpy(alive))[:, 1]).double()
    if cfg.prior == "l0":
        return p.mean()
    q = torch.from_numpy(hierarchical_quantiles(len(p), cfg.prior_rate, cfg.prior_concentration))
    return ((torch.sort(p).values - q) ** 2).mean()


@torch.no_grad()
def _most_probable_edge(graph: Graph, alive: np.ndarray) -> np.ndarray:
    """For ``free_edge``: mask (over ``alive``) of each vertex's most probable edge."""
    logit = graph.theta[:, 1].double().numpy()[alive]
    best = np.full(graph.n_vertices, -np.inf)
    np.maximum.at(best, graph.src[alive], logit)
    np.maximum.at(best, graph.dst[alive], logit)
    return (logit >= best[graph.src[alive]]) | (logit >= best[graph.dst[alive]])


def path_term(
    cfg: ProdigeConfig, logp: torch.Tensor, per_pair_loss: torch.Tensor | None, reachable: np.ndarray,
    graph: Graph,
) -> torch.Tensor:  # fmt: skip
    """The path log-probability term (see the module docstring). Updates the REINFORCE baseline."""
    ok = torch.from_numpy(reachable)
    if cfg.logp_term == "none" or not bool(ok.any()):
        return torch.zeros((), dtype=logp.dtype)
    if cfg.logp_term == "likelihood":
        return -cfg.logp_weight * logp[ok].mean()
    if per_pair_loss is None:
        raise ValueError("logp_term='reinforce' needs a task with a per-pair loss")
    L = per_pair_loss.detach().to(logp.dtype)
    base = graph.dense.baseline
    adv = L - base if int(graph.dense.baseline_count) else L - L.mean()
    with torch.no_grad():  # running mean of the batch loss, the baseline of the next step
        n = int(graph.dense.baseline_count) + 1
        base.mul_(1 - max(1 / n, 0.01)).add_(max(1 / n, 0.01) * L.mean())
        graph.dense.baseline_count.fill_(n)
    return cfg.logp_weight * (adv[ok] * logp[ok]).mean()
