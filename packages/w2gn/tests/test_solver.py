import time

import numpy as np
import pytest
import torch

from papercore.ot.metrics import l2_uvp
from papercore.ot.samplers import gaussian_problem, icnn_problem
from w2gn import W2GNConfig, W2GNTrainConfig, fit
from w2gn.baselines import BuresMap
from w2gn.bench import score


def test_gaussians_d8_below_one_percent_within_1k_steps():
    """Acceptance: forward and inverse L2-UVP < 1% at D = 8 in 1,000 steps, under 60 s of CPU time."""
    prob = gaussian_problem(8, seed=0)
    t0 = time.process_time()  # CPU time: the work, whatever else shares the machine
    T = fit(
        prob.P,
        prob.Q,
        W2GNConfig(pretrain_steps=500),
        W2GNTrainConfig(steps=1000, batch_size=256),
        device="cpu",
    )
    seconds = time.process_time() - t0
    r = score(prob, T.forward, T.inverse)
    assert r["l2_uvp_fwd"] < 1.0 and r["l2_uvp_inv"] < 1.0, r
    assert r["cos_fwd"] > 0.99 and seconds < 60
    assert abs(T.w2() - prob.w2) < 0.02 * prob.w2  # the primal W2^2 estimate against the closed form


def test_icnn_pair_d4_below_five_percent_and_better_than_bures():
    """Acceptance: a non-Gaussian pair with a known map, D = 4: forward L2-UVP < 5% and below Bures."""
    prob = icnn_problem(4, seed=0)
    T = fit(
        prob.P,
        prob.Q,
        W2GNConfig(pretrain_steps=300, widths="w2gn"),
        W2GNTrainConfig(steps=1000, batch_size=256),
        device="cpu",
    )
    ours = score(prob, T.forward, T.inverse)
    bures = score(prob, *(lambda b: (b.forward, b.inverse))(BuresMap(prob.P, prob.Q)))
    assert ours["l2_uvp_fwd"] < 5.0 and ours["l2_uvp_fwd"] < bures["l2_uvp_fwd"] / 3, (ours, bures)
    assert ours["l2_uvp_inv"] < bures["l2_uvp_inv"], (ours, bures)


def test_mm_and_reversed_solvers_learn_the_map():
    prob = gaussian_problem(2, seed=3)
    budget = W2GNTrainConfig(steps=150, batch_size=128)
    ident = score(prob, lambda x: x, lambda y: y)
    for cfg in (
        W2GNConfig(solver="mm", mm_inner_steps=3, pretrain_steps=100),
        W2GNConfig(reversed=True, pretrain_steps=100),
    ):
        T = fit(prob.P, prob.Q, cfg, budget, device="cpu")
        r = score(prob, T.forward, T.inverse)
        assert r["l2_uvp_fwd"] < ident["l2_uvp_fwd"] / 5 and r["l2_uvp_inv"] < ident["l2_uvp_inv"] / 5, (
            cfg,
            r,
        )


def test_arrays_are_accepted_and_checked():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = 2 * rng.normal(size=(500, 3)) + 1
    T = fit(x, y, W2GNConfig(pretrain_steps=50), W2GNTrainConfig(steps=100, batch_size=128), device="cpu")
    mapped = T.forward(x)
    assert isinstance(mapped, np.ndarray) and mapped.shape == (500, 3)
    assert abs(mapped.std() - 2) < 0.6  # roughly the target's spread after 100 steps
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"source has 1 row\(s\) with NaN or inf \(first: row 7\)"):
        fit(bad, y, train=W2GNTrainConfig(steps=1, batch_size=16), device="cpu")
    with pytest.raises(ValueError, match="different dimensions \\(3 and 2\\)"):
        fit(x, y[:, :2], train=W2GNTrainConfig(steps=1, batch_size=16), device="cpu")
    with pytest.raises(ValueError, match="500 samples, fewer than one batch \\(1024\\)"):
        fit(x, y, device="cpu")


def test_resume_continues_bit_identically(tmp_path):
    prob = gaussian_problem(2, seed=0)
    cfg = W2GNConfig(pretrain_steps=20)
    whole = fit(
        prob.P,
        prob.Q,
        cfg,
        W2GNTrainConfig(steps=40, batch_size=64, checkpoint_every=10),
        out=tmp_path / "a",
        device="cpu",
    )
    fit(
        prob.P,
        prob.Q,
        cfg,
        W2GNTrainConfig(steps=20, batch_size=64, checkpoint_every=10),
        out=tmp_path / "b",
        device="cpu",
    )
    resumed = fit(prob.P, prob.Q, cfg, W2GNTrainConfig(steps=40, batch_size=64, checkpoint_every=10), out=tmp_path / "b",
                  resume=True, device="cpu")  # fmt: skip
    for p, q in zip(whole.forward_potential.parameters(), resumed.forward_potential.parameters()):
        assert torch.equal(p, q)
    x = prob.P.sample(100, torch.Generator().manual_seed(0))
    assert l2_uvp(whole.forward(x), resumed.forward(x), 1.0) == 0.0
