import math

import pytest
import torch

from laplatgan import (
    AutoEncoder,
    Critic,
    LaplatGANConfig,
    LaplatTrainConfig,
    chamfer_loss,
    gradient_penalty,
    knn_upsample,
)
from laplatgan.models import Generator
from laplatgan.train import train_gan
from papercore.config import ConfigError
from papercore.geometry import chamfer, sample_shapes


def test_encoder_is_invariant_to_point_order():
    torch.manual_seed(0)
    ae = AutoEncoder(256, (16, 32), 24, (32,))
    x = sample_shapes("chair", 4, 256, seed=0)
    perm = x[:, torch.randperm(256)]
    for mode in (True, False):
        ae.train(mode)
        assert torch.allclose(ae.encode(x), ae.encode(perm), atol=1e-5)
        assert (ae.encode(x) >= 0).all()
    with pytest.raises(ValueError, match="takes clouds of 256 points"):
        ae.encode(x[:, :128])


def test_autoencoder_overfits_eight_shapes():
    torch.manual_seed(0)
    x = sample_shapes("table", 8, 128, seed=1)
    ae = AutoEncoder(128, (32, 64), 64, (128,))
    opt = torch.optim.Adam(ae.parameters(), 2e-3)
    first = float(chamfer(ae(x), x).mean())
    for _ in range(250):
        loss = chamfer_loss(ae(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ae.eval()
    final = float(chamfer(ae(x), x).mean())
    # the sampling noise of two independent 128-point clouds of one table is ~0.02: below it is memorising
    assert final < 0.004 and final < first / 10


def test_gradient_penalty_of_linear_critics():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    for norm in (1.0, 3.0):
        lin = torch.nn.Linear(8, 1)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(1, 8, generator=g))
            lin.weight.mul_(norm / lin.weight.norm())
        critic = lambda x, c=None, lin=lin: lin(x)[:, 0]  # noqa: E731
        assert gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, abs=1e-5)
    # a conditional critic: the gradient is with respect to the code only
    c = torch.randn(64, 4, generator=g)
    crit = Critic(8, (16,), cond_dim=4)
    assert gradient_penalty(crit, real, fake, c).item() >= 0


def test_upsampler_doubles_and_keeps_the_originals():
    x = sample_shapes("lamp", 2, 100, seed=2)
    up = knn_upsample(x, 7)
    assert up.shape == (2, 200, 3) and torch.equal(up[:, :100], x)
    d = torch.cdist(x[0].double(), x[0].double())
    nn = d.topk(7, largest=False).indices
    assert torch.allclose(up[0, 100:].double(), x[0].double()[nn].mean(1), atol=1e-6)
    assert torch.equal(knn_upsample(x[0], 1)[100:], x[0])  # k = 1: the point itself
    with pytest.raises(ValueError, match="k must be in"):
        knn_upsample(x[:, :5], 7)


def test_generator_outputs_and_config_checks():
    z = torch.randn(10, 4)
    assert (Generator(4, 6, (8,), output="relu")(z) >= 0).all()
    assert Generator(4, 6, (8,), cond_dim=6, output="linear")(z, torch.zeros(10, 6)).shape == (10, 6)
    with pytest.raises(ConfigError, match="levels must double"):
        LaplatGANConfig(levels=(512, 1000))
    with pytest.raises(ConfigError, match="upsample_k"):
        LaplatGANConfig(upsample_k=0)


def _eight_gaussians(n, g):
    centers = torch.tensor([[math.cos(a), math.sin(a)] for a in torch.arange(8) * math.pi / 4]) * 2
    return centers[torch.randint(8, (n,), generator=g)] + 0.05 * torch.randn(n, 2, generator=g), centers


def test_latent_wgan_gp_covers_the_modes_of_a_2d_mixture():
    g = torch.Generator().manual_seed(0)
    data, centers = _eight_gaussians(4000, g)
    cfg = LaplatGANConfig(bottleneck=2, z_dim=2, gen_hidden=(64, 64), critic_hidden=(64, 64), gen_output="linear",
                          gan_lr=1e-3, gan_betas=(0.5, 0.9))  # fmt: skip
    tcfg = LaplatTrainConfig(steps=350, batch_size=128, checkpoint_every=0, log_every=100)
    torch.manual_seed(0)
    gen, critic = Generator(2, 2, (64, 64), output="linear"), Critic(2, (64, 64))
    train_gan(gen, critic, data, None, cfg, tcfg, seed=0, plot=False)
    with torch.no_grad():
        s = gen(torch.randn(2000, 2, generator=g))
    near = torch.cdist(s, centers).min(1)
    hits = torch.bincount(near.indices[near.values < 0.3], minlength=8)
    assert (hits >= 10).sum() >= 7, hits.tolist()  # a mode is covered by >= 0.5% of the samples
