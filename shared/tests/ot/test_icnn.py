import pytest
import torch

from papercore.ot.icnn import MLP, ConvICNN, DenseICNN, ResNetMLP, gradient, pretrain_identity


def _net(dim=4, act="celu", rank=2, seed=0, s=1e-3):
    torch.manual_seed(seed)
    return DenseICNN(dim, (32, 32, 16), rank=rank, activation=act, strong_convexity=s, init_std=0.5).double()


@pytest.mark.parametrize("act", ["celu", "softplus", "relu"])
@pytest.mark.parametrize("rank", [1, 3])
def test_closed_form_gradient_equals_autograd(act, rank):
    net = _net(act=act, rank=rank)
    x = 3 * torch.randn(64, 4, dtype=torch.float64)
    torch.testing.assert_close(net.grad(x), gradient(net, x), rtol=1e-10, atol=1e-10)
    # ... and so do the parameter gradients of a loss on the map
    loss = lambda g: (g**2).sum()  # noqa: E731
    params = list(net.parameters())
    a = torch.autograd.grad(loss(net.grad(x)), params, allow_unused=True)
    b = torch.autograd.grad(loss(gradient(net, x)), params, allow_unused=True)  # (ReLU: biases unused)
    for p, q, w in zip(a, b, params):
        zero = torch.zeros_like(w)
        torch.testing.assert_close(zero if p is None else p, zero if q is None else q, rtol=1e-8, atol=1e-10)


def _jensen_gap(net, n=10_000, dim=4, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = scale * torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = torch.rand(n, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return (t[:, 0] * net(x) + (1 - t[:, 0]) * net(y) - net(t * x + (1 - t) * y)).min().item()


def _min_hessian_eig(net, dim=4, points=100):
    x = 2 * torch.randn(points, dim, dtype=torch.float64)
    eigs = [
        torch.linalg.eigvalsh(torch.autograd.functional.hessian(lambda z: net(z[None])[0], xi)).min()
        for xi in x
    ]
    return min(e.item() for e in eigs)


@pytest.mark.parametrize("act", ["celu", "softplus"])
def test_projected_net_is_convex_and_its_gradient_monotone(act):
    net = _net(act=act, s=1e-2)
    for scale in (1.0, 10.0):  # |x| ~ 10 included
        assert _jensen_gap(net, scale=scale) >= -1e-6
    assert _min_hessian_eig(net) >= -1e-5
    x, y = torch.randn(2000, 4, dtype=torch.float64), 5 * torch.randn(2000, 4, dtype=torch.float64)
    with torch.no_grad():
        mono = ((net.grad(x) - net.grad(y)) * (x - y)).sum(1) - net.strong_convexity * ((x - y) ** 2).sum(1)
    assert mono.min().item() >= -1e-9


def test_a_negative_z_path_weight_breaks_the_checks():
    """Negative control: one negative z-path weight, and the same checks catch the non-convexity.

    The read-out keeps one unit of the last layer, whose quadratic input path is zeroed (so it is
    affine) and whose z-path has a single weight, -3, on a convex unit of the layer below:
    ψ = celu(-3 h(x) + affine) with celu in its linear region, a concave function of x."""
    net = _net(s=0.0)
    with torch.no_grad():
        net.final_layer.weight.zero_()
        net.final_layer.weight[0, 0] = 1.0
        net.quadratic_layers[2].quadratic_decomposed[:, :, 0] = 0.0
        net.quadratic_layers[2].bias[0] = 50.0
        net.convex_layers[1].weight[0].zero_()
        net.convex_layers[1].weight[0, 0] = -3.0
    assert _jensen_gap(net) < -1e-6 and _min_hessian_eig(net) < -1e-5
    net.convexify()  # the projection removes the negative weight: convex again
    assert _jensen_gap(net) >= -1e-6 and _min_hessian_eig(net) >= -1e-5


def test_parameter_names_follow_the_w2_benchmark():
    net = DenseICNN(3, (8, 8, 4), rank=1)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["quadratic_layers.0.quadratic_decomposed"] == (3, 1, 8)
    assert shapes["quadratic_layers.2.weight"] == (4, 3) and shapes["quadratic_layers.1.bias"] == (8,)
    assert shapes["convex_layers.0.weight"] == (8, 8) and shapes["convex_layers.1.weight"] == (4, 8)
    assert shapes["final_layer.weight"] == (1, 4) and len(shapes) == 3 * 3 + 2 + 1


def test_conv_icnn_is_convex_in_the_image():
    torch.manual_seed(0)
    net = ConvICNN(channels=1, size=16, width=4, depth=2, rank=2, init_std=0.2).double()
    x, y = torch.randn(200, 1, 16, 16, dtype=torch.float64), torch.randn(200, 1, 16, 16, dtype=torch.float64)
    t = torch.rand(200, dtype=torch.float64)
    with torch.no_grad():
        gap = (
            t * net(x) + (1 - t) * net(y) - net(t[:, None, None, None] * x + (1 - t[:, None, None, None]) * y)
        )
    assert gap.min().item() >= -1e-8
    assert net.grad(x[:3]).shape == (3, 1, 16, 16) and net.push(x[:5], chunk=2).shape == (5, 1, 16, 16)


def test_identity_pretraining_and_maps():
    torch.manual_seed(0)
    net = DenseICNN(3, (32, 32, 16), strong_convexity=1e-4)
    mse = pretrain_identity(net, 3, steps=400, batch_size=256, tol=1e-3)
    x = torch.randn(100, 3)
    assert mse < 5e-2 and (net.push(x) - x).pow(2).mean() < 5e-2
    assert MLP(3, 2, width=8, depth=2)(x).shape == (100, 2) and ResNetMLP(3, 1, width=8)(x).shape == (100, 1)
    with pytest.raises(ValueError, match="activation must be one of"):
        DenseICNN(3, activation="tanh")
