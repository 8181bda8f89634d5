import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from neural_ot.functionals import (
    Batch,
    ClassGuided,
    PairGuided,
    StrongCost,
    WeakQuadratic,
    parse_cost,
)


def _batch(n=6, Z=3, d=4, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    tx = x[:, None] + torch.randn(n, Z, d, generator=g)
    return Batch(x, tx, **kw)


def test_strong_quadratic_matches_numpy():
    b = _batch()
    x, tx = b.x.numpy(), b.tx.numpy()
    want = np.mean(0.5 * ((tx - x[:, None]) ** 2).sum(-1))
    assert float(StrongCost()(b)) == pytest.approx(want, rel=1e-6)


def test_user_cost_is_checked_naming_the_batch():
    b = _batch(step=7)
    l1 = StrongCost(lambda x, y: (x - y).abs().sum(1))
    want = np.abs(b.tx.numpy() - b.x.numpy()[:, None]).sum(-1).mean()
    assert float(l1(b)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match=r"step 7 .*shape \(18,\)"):
        StrongCost(lambda x, y: (x - y).abs())(b)
    with pytest.raises(ValueError, match="non-finite value in the batch of step 7"):
        StrongCost(lambda x, y: torch.log(x.sum(1) - x.sum(1)))(b)


def test_weak_cost_zero_gamma_is_strong_and_unbiased():
    b = _batch(Z=5)
    assert float(WeakQuadratic(0.0)(b)) == pytest.approx(float(StrongCost()(b)), rel=1e-6)
    # T(x, z) = x + m + s*eps: E cost = 1/2 |m|^2 + (1 - gamma)/2 * s^2 * d (closed form), averaged over many x
    n, Z, d, s, gamma = 20000, 4, 3, 0.7, 0.4
    g = torch.Generator().manual_seed(1)
    x, m = torch.randn(n, d, generator=g), torch.tensor([0.5, -1.0, 0.2])
    tx = x[:, None] + m + s * torch.randn(n, Z, d, generator=g)
    want = 0.5 * float(m @ m) + (1 - gamma) / 2 * s**2 * d
    assert float(WeakQuadratic(gamma)(Batch(x, tx))) == pytest.approx(want, rel=0.02)
    assert float(WeakQuadratic(gamma)(Batch(x, tx, ramp=0.0))) == pytest.approx(
        0.5 * float(m @ m) + s**2 * d / 2, rel=0.02
    )


def _energy_numpy(t, y):
    m = len(t)
    return cdist(t, y).mean() - 0.5 * cdist(t, t).sum() / (m * (m - 1))


def test_class_guided_energy_matches_scipy_in_both_paths():
    g = torch.Generator().manual_seed(0)
    k, C, Z, d = 3, 4, 2, 5
    labels = torch.arange(k).repeat_interleave(C)
    x = torch.randn(k * C, d, generator=g)
    tx = torch.randn(k * C, Z, d, generator=g)
    y = torch.randn(k * C, d, generator=g) + 1
    want = np.mean(
        [_energy_numpy(tx[labels == c].reshape(-1, d).numpy(), y[labels == c].numpy()) for c in range(k)]
    )
    blocked = ClassGuided()(Batch(x, tx, labels=labels, y=y, y_labels=labels))
    assert float(blocked) == pytest.approx(want, rel=1e-5)
    p = torch.randperm(k * C, generator=g)  # shuffled rows: the per-class loop
    shuffled = ClassGuided()(Batch(x[p], tx[p], labels=labels[p], y=y, y_labels=labels))
    assert float(shuffled) == pytest.approx(want, rel=1e-5)


def test_class_guided_prefers_the_right_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 8 + [1] * 8)
    y = torch.cat([torch.randn(8, 2, generator=g) * 0.1, torch.randn(8, 2, generator=g) * 0.1 + 5])
    right = torch.cat([y[:8] + 0.05, y[8:] - 0.05])[:, None]
    wrong = torch.cat([y[8:], y[:8]])[:, None]
    f = ClassGuided()
    x = torch.zeros(16, 2)
    assert (
        float(f(Batch(x, right, labels=labels, y=y, y_labels=labels)))
        < float(f(Batch(x, wrong, labels=labels, y=y, y_labels=labels))) - 2
    )


@pytest.mark.parametrize("loss", ["mse", "mae", "rmse"])
def test_pair_guided_losses(loss):
    b = _batch(n=5, Z=2, d=3)
    y = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    b.y = y
    err = b.tx.numpy() - y.numpy()[:, None]
    want = {"mse": (err**2).mean(), "mae": np.abs(err).mean(), "rmse": np.sqrt((err**2).mean(-1)).mean()}[
        loss
    ]
    assert float(PairGuided(loss)(b)) == pytest.approx(want, rel=1e-5)


def test_pair_guided_perceptual_uses_the_feature_net():
    feats = torch.nn.Linear(3, 2)
    b = _batch(n=4, Z=1, d=3)
    b.y = torch.zeros(4, 3)
    want = ((feats(b.tx[:, 0]) - feats(b.y)) ** 2).mean()
    assert float(PairGuided("perceptual", feats)(b)) == pytest.approx(float(want), rel=1e-5)


def test_parse_cost():
    assert isinstance(parse_cost("quadratic"), StrongCost)
    assert parse_cost("weak:0.5").gamma == 0.5
    assert parse_cost("pair-guided:mae").loss == "mae"
    for bad, msg in [("weak:2", "0 <= gamma <= 1"), ("weak:x", "weak:GAMMA"), ("cubic", "unknown cost"),
                     ("pair-guided:l7", "mse, mae"), ("pair-guided:perceptual", "feature network")]:  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            parse_cost(bad)
