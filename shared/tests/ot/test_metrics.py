import ot
import pytest
import torch

from papercore.ot.metrics import bw2_uvp, cos_similarity, frechet_distance, l2_uvp, sample_w2, total_variance
from papercore.ot.samplers import gaussian_problem


def test_l2_uvp_and_cos_on_known_maps():
    prob = gaussian_problem(4, seed=1)
    x, y = prob.sample_pairs(50_000, torch.Generator().manual_seed(0))
    assert l2_uvp(y, y, prob.var_Q) == 0.0 and cos_similarity(x, y, y) == pytest.approx(1.0)
    const = y.double().mean(0).expand_as(y)
    assert l2_uvp(const, y, total_variance(y)) == pytest.approx(100.0, rel=1e-9)
    # the identity map: 100 W2^2 / Var(Q), in closed form
    assert l2_uvp(x, y, prob.var_Q) == pytest.approx(100 * prob.w2 / prob.var_Q, rel=0.02)
    assert cos_similarity(x, x + (y - x) * 0.5, y) == pytest.approx(1.0)
    assert cos_similarity(x, x - (y - x), y) == pytest.approx(-1.0)


def test_bw2_uvp_and_frechet():
    prob = gaussian_problem(3, seed=0)
    y = prob.Q.sample(200_000, torch.Generator().manual_seed(0))
    assert bw2_uvp(y, prob.Q.mean, prob.Q.cov) < 0.05
    assert bw2_uvp(y + 1.0, prob.Q.mean, prob.Q.cov) == pytest.approx(
        100 * 3 / torch.trace(prob.Q.cov).item(), rel=0.02
    )
    x = prob.P.sample(200_000, torch.Generator().manual_seed(1))
    assert frechet_distance(x, y) == pytest.approx(prob.w2, rel=0.02)


def test_sample_w2_agrees_with_pot_and_sinkhorn_bounds_it():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 3, generator=g), torch.randn(300, 3, generator=g) + 2
    exact = sample_w2(x, y)
    M = ot.dist(x.double().numpy(), y.double().numpy())
    assert exact == pytest.approx(ot.emd2(ot.unif(300), ot.unif(300), M), rel=1e-9)
    approx = sample_w2(x, y, method="sinkhorn", reg=0.02)
    assert exact <= approx <= 1.1 * exact
    with pytest.raises(ValueError, match="must be 'emd' or 'sinkhorn'"):
        sample_w2(x, y, method="lp")
