import numpy as np
import ot
import pytest
import torch

from wbar.suites import _Base, location_scatter, nongaussian
from wbar.synth import WEIGHTS, ave_synth, draw_images


@pytest.mark.parametrize("base", ["gaussian", "uniform", "swiss_roll"])
def test_bases_are_standardised(base):
    x = _Base(base, 4).sample(200_000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(x.mean(0), torch.zeros(4, dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), torch.eye(4, dtype=torch.float64), atol=0.03, rtol=0)


def test_location_scatter_truth_is_pots_bures_barycentre():
    prob = location_scatter(3, 3, "uniform", seed=2, weights=[0.2, 0.3, 0.5])
    stats = [m.moments(2**17) for m in prob.marginals]
    means = np.stack([m.numpy() for m, _ in stats])
    covs = np.stack([c.numpy() for _, c in stats])
    mean, cov = ot.gaussian.bures_wasserstein_barycenter(means, covs, weights=np.array([0.2, 0.3, 0.5]),
                                                         method="fixed_point", num_iter=1000, eps=1e-12)  # fmt: skip
    # the marginals' sample moments give POT's barycentre of the same family (Monte-Carlo error only)
    np.testing.assert_allclose(prob.mean.numpy(), mean, atol=0.02)
    np.testing.assert_allclose(prob.cov.numpy(), cov, atol=0.03)
    with pytest.raises(ValueError, match="unknown base 'cube'"):
        location_scatter(2, base="cube")


def test_nongaussian_joint_draws_average_to_the_truth():
    prob = nongaussian(seed=0)
    y, xs = prob.extra["joint"](512, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sum(a * x for a, x in zip(prob.weights, xs)), y)
    assert prob.truth.sample(10, torch.Generator().manual_seed(0)).shape == (10, 2)


def test_ave_synth_clean_images_are_the_barycentric_average(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path))
    imgs = draw_images(6, 16, seed=3)
    assert imgs.shape == (6, 3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1 and imgs.std() > 0.1
    prob = ave_synth(n=12, size=16, seed=0, width=8)
    assert prob.weights == WEIGHTS and prob.image_shape == (3, 16, 16) and prob.extra["residual"] < 1e-3
    avg = sum(a * m for a, m in zip(WEIGHTS, prob.extra["marginal_images"]))
    torch.testing.assert_close(avg, prob.extra["clean"], atol=1e-5, rtol=0)
    assert all(
        (m - prob.extra["clean"]).abs().mean() > 1e-3 for m in prob.extra["marginal_images"]
    )  # not trivial
    assert len(list((tmp_path / "wbar").glob("ave-synth-*.safetensors"))) == 1
    again = ave_synth(n=12, size=16, seed=0, width=8)  # from the cache
    torch.testing.assert_close(again.extra["clean"], prob.extra["clean"])
