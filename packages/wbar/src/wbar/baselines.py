r"""Baselines scored beside WIN.

* :func:`bures_from_samples`: the Gaussian barycentre (POT's ``bures_wasserstein_barycenter``, fixed
  point) of the marginals' sample means and covariances, sampled;
* :func:`free_support`: POT's free-support barycentre (``ot.lp.free_support_barycenter``): ``n`` points
  minimising the weighted sum of exact W2² to ``n``-point samples of the marginals (small n; 2-D);
* :func:`oracle`: the barycentre through the true maps, where known: :math:`\sum_k \alpha_k T_{1\to k}(x)`
  for :math:`x \sim P_1`; its distance to the truth is the sampling noise floor.
"""

from __future__ import annotations

import numpy as np
import torch

from papercore.ot.samplers import Sampler
from wbar.suites import BarycenterProblem


def bures_from_samples(
    marginals: list[Sampler], weights, n_moments: int, n: int, seed: int = 0
) -> torch.Tensor:
    """``n`` draws of the Gaussian barycentre of the marginals' sample moments (POT, fixed point)."""
    import ot

    stats = [p.moments(n_moments, seed + i) for i, p in enumerate(marginals)]
    means = np.stack([m.cpu().numpy() for m, _ in stats])
    covs = np.stack([c.cpu().numpy() for _, c in stats])
    mean, cov = ot.gaussian.bures_wasserstein_barycenter(means, covs, weights=np.asarray(weights, dtype=np.float64),
                                                         method="fixed_point", num_iter=1000, eps=1e-10)  # fmt: skip
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.multivariate_normal(mean, cov, size=n)).float()


def free_support(
    marginals: list[Sampler], weights, n: int = 500, seed: int = 0, iters: int = 100
) -> torch.Tensor:
    """POT's free-support barycentre of ``n``-point samples of the marginals (``n`` support points)."""
    import ot

    g = torch.Generator().manual_seed(seed)
    xs = [p.sample(n, g).double().cpu().numpy() for p in marginals]
    init = np.random.default_rng(seed).normal(size=(n, xs[0].shape[1])) * xs[0].std(0) + xs[0].mean(0)
    bar = ot.lp.free_support_barycenter(xs, [ot.unif(n)] * len(xs), init, weights=np.asarray(weights, dtype=np.float64),
                                        numItermax=iters, stopThr=1e-9)  # fmt: skip
    return torch.from_numpy(bar).float()


def oracle(problem: BarycenterProblem, n: int, seed: int = 0) -> torch.Tensor:
    """``Σ_k α_k x_k`` for joint draws ``x_k = T_k(y)`` of the marginals through the exact maps (where known):
    exactly a sample of the truth, so its distance to another draw of the truth is the noise floor."""
    joint = problem.extra.get("joint")
    if joint is None:
        raise ValueError(f"{problem.name}: no exact maps to build the oracle barycentre")
    _, xs = joint(n, torch.Generator(device=problem.marginals[0].device).manual_seed(seed))
    return sum(a * x for a, x in zip(problem.weights, xs)).detach()
