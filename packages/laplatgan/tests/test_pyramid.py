import dataclasses

import pytest
import torch

from laplatgan import LGAN, LaplatGAN, LaplatGANConfig, LaplatTrainConfig, LatentGMM, fit, pyramid, synthetic
from laplatgan.pyramid import make_critic, make_generator
from laplatgan.train import train_gan

TINY = LaplatGANConfig(levels=(32, 64, 128), encoder=(16,), bottleneck=16, decoder=(32,), z_dim=8, gen_hidden=(16,),
                       critic_hidden=(16, 16))  # fmt: skip
BUDGET = LaplatTrainConfig(steps=6, ae_steps=6, batch_size=8, eval_every=3, checkpoint_every=3, log_every=3)


@pytest.fixture(scope="module")
def data():
    return synthetic("table", n_train=16, n_val=8, n_test=8, points=128, seed=0)


def test_sampling_is_deterministic_and_upsampling_checks_the_resolution():
    torch.manual_seed(0)
    model = LaplatGAN(TINY)
    a, b, c = model.sample(5, seed=3), model.sample(5, seed=3), model.sample(5, seed=4)
    assert {k: v.shape for k, v in a.items()} == {32: (5, 32, 3), 64: (5, 64, 3), 128: (5, 128, 3)}
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a[128], c[128])
    up = model.upsample(a[32][0], seed=1)
    assert up[64].shape == (64, 3) and up[128].shape == (128, 3)
    assert set(model.upsample(a[64], seed=1)) == {128}
    with pytest.raises(ValueError, match="another resolution"):
        model.upsample(torch.rand(50, 3))
    bad = a[32][0].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.upsample(bad)


def test_fit_save_load_resume(data, tmp_path):
    model = fit(data, TINY, BUDGET, tmp_path, seed=0, plot=False)
    assert (tmp_path / "model" / "model.safetensors").is_file() and (
        tmp_path / "ae128" / "checkpoint"
    ).is_dir()
    loaded = LaplatGAN.load(tmp_path)
    s1, s2 = model.sample(4, seed=1), loaded.sample(4, seed=1)
    assert all(torch.allclose(s1[k], s2[k], atol=1e-6) for k in s1)
    assert loaded.meta["data"] == "synthetic:table" and loaded.meta["stages"]["gan128"]["steps"] == 6
    again = fit(data, TINY, BUDGET, tmp_path, seed=0, resume=True, plot=False)  # every stage already done
    assert all(torch.allclose(again.sample(4, seed=1)[k], s1[k], atol=1e-6) for k in s1)
    with pytest.raises(FileNotFoundError, match="no LaplatGAN model"):
        LaplatGAN.load(tmp_path / "ae128")


def test_original_gp_flag_penalises_the_residual(monkeypatch):
    """The notebook's bug interpolates between the real code and the residual r; the fix uses r + c."""
    seen = {}

    def spy(critic, real, fake, cond=None, generator=None):
        seen.setdefault("fake", fake.detach().clone())
        return torch.zeros((), requires_grad=True)

    import laplatgan.train as T

    monkeypatch.setattr(T, "gradient_penalty", spy)
    torch.manual_seed(0)
    real, cond = torch.rand(32, 4), torch.full((32, 4), 100.0)  # c dominates r + c
    for original, far in ((True, False), (False, True)):
        seen.clear()
        cfg = dataclasses.replace(TINY, bottleneck=4, z_dim=2, original_gp=original, n_critic=1)
        gen, critic = make_generator(cfg, 1), make_critic(cfg, 1)
        train_gan(
            gen, critic, real, cond, cfg, dataclasses.replace(BUDGET, steps=1, checkpoint_every=0), plot=False
        )
        assert bool(seen["fake"].abs().mean() > 50) is far


def test_baselines_sample_top_level_clouds(data):
    torch.manual_seed(0)
    model = LaplatGAN(TINY)
    lgan = LGAN(model.aes[-1], TINY)
    lgan.fit(data.train, BUDGET, steps=3, plot=False)
    assert lgan.sample(5, seed=0).shape == (5, 128, 3) and torch.equal(
        lgan.sample(5, seed=0), lgan.sample(5, seed=0)
    )
    gmm = LatentGMM(model.aes[-1], n_components=4).fit(data.train)
    assert gmm.sample(6, seed=1).shape == (6, 128, 3)


def test_pyramid_subsets_are_nested():
    x = torch.rand(3, 128, 3)
    p = pyramid(x, (32, 64, 128), seed=0)
    for lo, hi in ((32, 64), (64, 128)):
        assert torch.equal(p[lo], p[hi][:, :lo])
    assert torch.equal(torch.sort(p[128][0, :, 0]).values, torch.sort(x[0, :, 0]).values)
    with pytest.raises(ValueError, match="fewer than the top level"):
        pyramid(x[:, :100], (32, 64, 128))


def test_synthetic_splits_are_seeded_and_disjoint(tmp_path):
    a, b = synthetic("box", 4, 2, 3, points=64, seed=0), synthetic("box", 4, 2, 3, points=64, seed=0)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test) and a.train.shape == (4, 64, 3)
    assert not torch.equal(a.test, a.test2) and not torch.equal(a.train[:2], a.val)
    assert not torch.equal(a.train, synthetic("box", 4, 2, 3, points=64, seed=1).train)
    from laplatgan.data import from_folder
    from papercore.geometry.io import write_cloud

    for i in range(5):
        write_cloud(tmp_path / f"{i}.npy", torch.rand(64, 3))
    with pytest.raises(ValueError, match="needs at least 10"):
        from_folder(tmp_path, 64)
