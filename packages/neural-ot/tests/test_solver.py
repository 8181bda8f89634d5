import numpy as np
import pytest
import torch

from neural_ot import NOTConfig, NOTTrainConfig, TransportMap, data, fit
from neural_ot.evaluate import transfer_accuracy

FAST = NOTConfig(width=64, depth=2, lr_map=3e-3, lr_potential=3e-3, map_steps=5)


def test_gaussian_2d_quadratic_map_matches_bures():
    from papercore.ot import gaussian_problem
    from papercore.ot.metrics import l2_uvp

    prob = gaussian_problem(2, seed=1)
    g = torch.Generator().manual_seed(0)
    m = fit(prob.P.sample(4000, g), prob.Q.sample(4000, g), "quadratic", FAST,
            NOTTrainConfig(steps=200, batch_size=128), device="cpu", plot=False)  # fmt: skip
    x, tx = prob.sample_pairs(2000, g)
    uvp = l2_uvp(m.transport(x), tx, prob.var_Q)
    assert uvp < 5, uvp  # the identity map scores ~100+


def test_grid_class_guided_beats_emd():
    p = data.gaussian_grid(n=2048, seed=0)
    lt = data.labelled_subset(p.target_labels, 10, seed=0)
    m = fit(p.source, p.target, "class-guided", NOTConfig(width=64, lr_map=1e-3, lr_potential=1e-3, map_steps=5),
            NOTTrainConfig(steps=150, batch_size=64), source_labels=p.source_labels, target_labels=lt,
            class_size=4, device="cpu", plot=False)  # fmt: skip
    acc = transfer_accuracy(m, p.source[:1000], p.source_labels[:1000], p.perm, data.grid_classify)
    assert acc > 0.8, acc


def test_weak_cost_conditional_variance_grows_with_gamma():
    """P = N(0, 1), Q = N(0, 4): the gamma-weak optimum is T(x, .) ~ N(x/gamma, 4 - 1/gamma^2) for gamma >= 1/2,
    the strong map 2x (no spread) below; so variance 0 at gamma = 0 and 2.77 at gamma = 0.9."""
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((4000, 1)), 2 * rng.standard_normal((4000, 1))
    cfg = NOTConfig(width=64, depth=2, z_dim=1, z_size=8, map_steps=5, lr_map=3e-3, lr_potential=3e-3)
    x = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]
    var, slope = {}, {}
    for gamma in (0.0, 0.9):
        m = fit(
            xs, ys, f"weak:{gamma}", cfg, NOTTrainConfig(steps=300, batch_size=64), device="cpu", plot=False
        )
        s = m.sample(x, 64, generator=torch.Generator().manual_seed(0))
        var[gamma], slope[gamma] = s.var(1, ddof=1).mean(), np.polyfit(x[:, 0], s.mean(1)[:, 0], 1)[0]
    assert var[0.0] < 0.3 and abs(slope[0.0] - 2) < 0.3, (var, slope)  # the strong map 2x
    assert var[0.9] > 1.5 and var[0.9] > var[0.0] + 1.2, var


def test_bad_inputs_are_named():
    x = np.zeros((10, 2), np.float32)
    x2 = x.copy()
    x2[3, 1] = np.nan
    tr = NOTTrainConfig(steps=1, batch_size=4)
    with pytest.raises(ValueError, match="source has 1 row.*row 3"):
        fit(x2, x, "quadratic", FAST, tr, device="cpu")
    with pytest.raises(ValueError, match="source labels has shape \\(9,\\) but source has 10"):
        fit(
            x,
            x,
            "class-guided",
            FAST,
            tr,
            source_labels=np.zeros(9),
            target_labels=np.zeros(10),
            device="cpu",
        )
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have source samples but no labelled target"):
        fit(x, x, "class-guided", FAST, tr, source_labels=np.repeat([0, 1], 5), target_labels=np.r_[np.zeros(5), -np.ones(5)],
            device="cpu")  # fmt: skip
    with pytest.raises(ValueError, match="3 features but target has 2"):
        fit(np.zeros((10, 3)), x, "quadratic", FAST, tr, device="cpu")
    with pytest.raises(ValueError, match="returned \\(4, 2\\) for the batch of step 0"):
        fit(x, x, lambda a, b: (a - b).abs(), FAST, tr, device="cpu")
    with pytest.raises(ValueError, match="z_size >= 2"):
        fit(x, x, "weak:0.5", FAST, tr, device="cpu")


def test_save_load_roundtrip_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 2
    cfg = NOTConfig(width=32, depth=1, z_dim=2, z_size=2, map_steps=2)
    tr = NOTTrainConfig(steps=4, batch_size=16, checkpoint_every=2)
    m = fit(xs, ys, "weak:0.3", cfg, tr, out=tmp_path / "a", device="cpu", plot=False)
    z = rng.normal(size=(5, 2)).astype(np.float32)
    back = TransportMap.load(tmp_path / "a")
    assert np.array_equal(back.transport(xs[:5], z), m.transport(xs[:5], z))
    assert back.cost == {"name": "weak:0.3", "gamma": 0.3} and back.sample(xs[:4], 3).shape == (4, 3, 3)
    # resume: 2 steps, then 4 more from the checkpoint == 4 in one go
    fit(xs, ys, "weak:0.3", cfg, NOTTrainConfig(steps=2, batch_size=16, checkpoint_every=2), out=tmp_path / "b",
        device="cpu", plot=False)  # fmt: skip
    r = fit(xs, ys, "weak:0.3", cfg, tr, out=tmp_path / "b", resume=True, device="cpu", plot=False)
    assert np.array_equal(r.transport(xs[:5], z), m.transport(xs[:5], z))
    with pytest.raises(ValueError, match=r"expected points of shape \[n, 3\]"):
        m.transport(xs[:, :2])
