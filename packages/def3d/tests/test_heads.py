import torch

from def3d import HistHead, L1Head, MSEHead, make_head


def test_hist_target_sums_to_one_and_decodes_within_half_a_bin():
    h = HistHead()
    assert h.channels == 244
    d = torch.cat(
        [torch.rand(500, generator=torch.Generator().manual_seed(0)), torch.tensor([0.0, 1.0, 0.5])]
    )
    q = h.target(d)
    assert torch.allclose(q.sum(-1), torch.ones(len(d)), atol=1e-6)
    err = (h.decode(torch.log(q.clamp_min(1e-30))) - d).abs().max()
    assert err < 1 / 480


def test_hist_target_is_the_binned_gaussian():
    from scipy.stats import norm

    h = HistHead()
    d = 0.3
    e = (torch.arange(-2, 243) / 240).numpy()
    q = norm.cdf(e[1:], d, 1 / 240) - norm.cdf(e[:-1], d, 1 / 240)
    q = q / q.sum()
    assert torch.allclose(h.target(torch.tensor([d], dtype=torch.float64))[0], torch.from_numpy(q), atol=1e-9)


def test_heads_share_one_interface_and_their_losses_vanish_at_the_target():
    d = torch.rand(4, 10)
    for name, cls in (("hist", HistHead), ("mse", MSEHead), ("l1", L1Head)):
        h = make_head(name)
        assert isinstance(h, cls)
        out = torch.log(h.target(d).clamp_min(1e-30)) if name == "hist" else d[..., None]
        assert h.decode(out).shape == d.shape
        assert float(h.loss(out, d)) < 1e-5
        assert float(h.loss(out, 1 - d)) > 1e-3
