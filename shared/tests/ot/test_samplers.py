import numpy as np
import pytest
import torch

from papercore.ot.gaussian import bures_w2
from papercore.ot.icnn import DenseICNN, gradient
from papercore.ot.samplers import (
    TOYS,
    ArraySampler,
    gaussian_problem,
    icnn_problem,
    mix3tomix10,
    pairwise_barycenter,
    random_gaussian,
    random_mixture,
)


def test_samplers_are_seeded():
    P = random_mixture(5, seed=1)
    a = P.sample(100, torch.Generator().manual_seed(3))
    b = P.sample(100, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, P.sample(100, torch.Generator().manual_seed(4)))
    for name, cls in TOYS.items():
        x = cls().sample(500, torch.Generator().manual_seed(0))
        assert x.shape == (500, 2) and torch.isfinite(x).all(), name


def test_gaussian_problem_map_pushes_p_to_q():
    prob = gaussian_problem(6, seed=2)
    x, y = prob.sample_pairs(200_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y.double().mean(0), prob.Q.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(y.double().T), prob.Q.cov, atol=0.05, rtol=0)
    torch.testing.assert_close(prob.true_inverse(y), x, atol=1e-4, rtol=0)
    # W2^2 closed form = E|x - T(x)|^2
    assert abs(((x - y).double() ** 2).sum(1).mean().item() - prob.w2) < 0.02 * prob.w2
    assert prob.w2 == pytest.approx(bures_w2(prob.P.mean, prob.P.cov, prob.Q.mean, prob.Q.cov))


def test_random_mixture_is_the_benchmarks_construction():
    """Hand-rebuilt from the W2 benchmark's recipe: NumPy seed 0, a permutation per coordinate, then the maps."""
    rs = np.random.RandomState(0)
    centers = np.stack([rs.choice([0, 1, 2], 3, replace=False) for _ in range(4)], 1).astype(np.float64) - 1.0
    maps = rs.normal(size=(3, 4, 4))
    maps /= np.sqrt((maps**2).sum(2, keepdims=True))
    mult = np.sqrt((centers**2).sum(1).mean() + 4 * 0.4**2) / 2
    P = random_mixture(4, 3, seed=0)
    np.testing.assert_allclose(P.means.numpy(), centers / mult, rtol=1e-6)
    np.testing.assert_allclose(P.scales.numpy(), 0.4 * maps / mult, rtol=1e-5)
    x = P.sample(100_000, torch.Generator().manual_seed(0)).double()
    assert abs(((x - x.mean(0)) ** 2).sum(1).mean().item() - 4) < 0.2  # standardised: total variance ~ D


def test_icnn_problem_is_standardised_and_nonlinear():
    prob = icnn_problem(4, seed=0)
    x, y = prob.sample_pairs(50_000, torch.Generator().manual_seed(1))
    assert y.mean(0).abs().max() < 0.05 and abs(((y - y.mean(0)) ** 2).sum(1).mean().item() - 4) < 0.2
    # the true map is a gradient of the (scaled) sum of the convex potentials
    net = prob.Q.f.__self__
    torch.testing.assert_close(prob.true_map(x[:50]), gradient(net, x[:50]), rtol=1e-4, atol=1e-5)


def _write_benchmark_pair(folder, dim, seed):
    """A pair in the W2 benchmark's layout, written by hand (keys and shapes of its DenseICNN state dict)."""
    g = torch.Generator().manual_seed(seed)
    h = [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]
    states = []
    for v in (1, 2):
        sd = {}
        for i, w in enumerate(h):
            sd[f"quadratic_layers.{i}.quadratic_decomposed"] = 0.1 * torch.randn(dim, 1, w, generator=g)
            sd[f"quadratic_layers.{i}.weight"] = 0.1 * torch.randn(w, dim, generator=g)
            sd[f"quadratic_layers.{i}.bias"] = 0.1 * torch.randn(w, generator=g)
        sd["convex_layers.0.weight"] = 0.1 * torch.rand(h[1], h[0], generator=g)
        sd["convex_layers.1.weight"] = 0.1 * torch.rand(h[2], h[1], generator=g)
        sd["final_layer.weight"] = 0.1 * torch.rand(1, h[2], generator=g)
        torch.save(sd, folder / f"{dim}_v{v}.pt")
        states.append(sd)
    return states


def _psi(sd, x):
    """The benchmark's potential from its tensors: h1 = q1(x); h = celu(W h + q(x)); w.h + 0.005|x|^2."""

    def quad(i):
        u = sd[f"quadratic_layers.{i}.quadratic_decomposed"][:, 0, :]
        return (x @ u) ** 2 + x @ sd[f"quadratic_layers.{i}.weight"].T + sd[f"quadratic_layers.{i}.bias"]

    h = quad(0)
    h = torch.celu(h @ sd["convex_layers.0.weight"].T + quad(1))
    h = torch.celu(h @ sd["convex_layers.1.weight"].T + quad(2))
    return (h @ sd["final_layer.weight"].T)[:, 0] + 0.5 * 1e-2 * (x * x).sum(1)


def test_published_pairs_load_and_give_the_map_their_tensors_say(tmp_path):
    states = _write_benchmark_pair(tmp_path, 3, seed=0)
    prob = mix3tomix10(3, tmp_path)
    x = prob.P.sample(64, torch.Generator().manual_seed(0)).requires_grad_(True)
    raw = torch.autograd.grad((_psi(states[0], x) + _psi(states[1], x)).sum(), x)[0].detach()
    psi = prob.Q.f.__self__
    expected = psi.scale * (raw - psi.shift)
    torch.testing.assert_close(prob.true_map(x.detach()), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no 4_v1.pt"):
        mix3tomix10(4, tmp_path)
    (tmp_path / "4_v1.pt").write_bytes((tmp_path / "3_v1.pt").read_bytes())
    (tmp_path / "4_v2.pt").write_bytes((tmp_path / "3_v2.pt").read_bytes())
    with pytest.raises(ValueError, match="not a 4-dimensional W2-benchmark DenseICNN"):
        mix3tomix10(4, tmp_path)


def test_pairwise_barycenter_construction():
    torch.manual_seed(0)
    psi = DenseICNN(2, (16, 16, 8), strong_convexity=0.5, init_std=0.5)
    P1 = random_gaussian(2, 0)
    bary = pairwise_barycenter(P1, psi)
    y, (x1, x2) = bary.sample_joint(256, torch.Generator().manual_seed(0))
    torch.testing.assert_close(0.5 * x1 + 0.5 * x2, y)  # the barycentric average of the maps is the identity
    torch.testing.assert_close(x2, psi.grad(x1))  # P2 = grad psi # P1
    torch.testing.assert_close(bary.to_barycenter[0](x1), y)
    torch.testing.assert_close(bary.to_barycenter[1](x2), y, atol=1e-4, rtol=0)  # through a Newton solve
    for k, x in enumerate((x1, x2)):
        torch.testing.assert_close(bary.from_barycenter[k](y), x, atol=1e-4, rtol=0)
    assert [m.dim for m in bary.marginals] == [2, 2] and bary.weights == (0.5, 0.5)


def test_array_sampler_checks_shape():
    s = ArraySampler(np.arange(12.0).reshape(6, 2))
    assert s.sample(4, torch.Generator().manual_seed(0)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"\[n, dim\] array"):
        ArraySampler(np.arange(5.0))
