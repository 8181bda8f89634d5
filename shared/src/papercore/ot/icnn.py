r"""Input-convex neural networks (ICNNs) and the other networks of the neural OT solvers.

:class:`DenseICNN` is the potential of W2GN and of the W2 benchmark (Korotin et al.):

.. math::

    h_1 = q_1(x), \qquad h_{l+1} = \sigma\big(W_l^{+} h_l + q_{l+1}(x)\big), \qquad
    \psi(x) = w^{+\top} h_L + \tfrac{s}{2}\|x\|^2,

    q_l(x)_j = \sum_{r=1}^{R} (u_{l,r,j}^\top x)^2 + a_{l,j}^\top x + b_{l,j},

with :math:`\sigma` convex and non-decreasing (CELU, softplus or ReLU). Each :math:`q_l` is convex
(a sum of squares plus an affine map), a non-negative combination of convex functions is convex,
and a convex non-decreasing function of a convex function is convex, so :math:`\psi` is convex
whenever the z-path weights :math:`W_l^{+}` and :math:`w^{+}` are non-negative; :meth:`DenseICNN.convexify`
projects them after every optimiser step. With :math:`s > 0`, :math:`\psi` is :math:`s`-strongly
convex and :math:`\nabla\psi` is an invertible monotone map.

:meth:`DenseICNN.grad` evaluates :math:`\nabla\psi` in closed form (the backward recursion written
out as matrix products), so a loss on :math:`\nabla\psi` needs one backward pass for its parameter
gradients instead of autograd's double backward; it equals ``torch.autograd.grad`` (tested).

The parameter names and shapes are those of the W2 benchmark's ``DenseICNN``
(``quadratic_layers.i.{quadratic_decomposed,weight,bias}``, ``convex_layers.i.weight``,
``final_layer.weight``), so its published potentials load with ``load_state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvICNN",
    "ConvexQuadratic",
    "DenseICNN",
    "MLP",
    "ResNetMLP",
    "gradient",
    "pretrain_identity",
]


class ConvexQuadratic(nn.Module):
    r""":math:`q(x)_j = \sum_r (u_{r,j}^\top x)^2 + a_j^\top x + b_j` (``quadratic_decomposed`` is ``[in, rank, out]``)."""

    def __init__(self, in_features: int, out_features: int, rank: int = 1, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.quadratic_decomposed = nn.Parameter(torch.randn(in_features, rank, out_features))
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ U`` as ``[n, rank, out]``."""
        n = x.shape[0]
        return (x @ self.quadratic_decomposed.reshape(self.in_features, -1)).view(
            n, self.rank, self.out_features
        )

    def forward(self, x: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
        p = self.project(x) if p is None else p
        return (p * p).sum(1) + F.linear(x, self.weight, self.bias)

    def vjp(self, p: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla q(x)^\top \delta = 2 \sum_r u_r (\delta \odot u_r^\top x) + A^\top\delta` for a batch."""
        n = delta.shape[0]
        u = self.quadratic_decomposed.reshape(self.in_features, -1)
        return 2 * ((p * delta[:, None, :]).reshape(n, -1) @ u.T) + delta @ self.weight


_ACTIVATIONS = ("celu", "softplus", "relu")


def _act(z: torch.Tensor, kind: str) -> torch.Tensor:
    return torch.celu(z) if kind == "celu" else F.softplus(z) if kind == "softplus" else F.relu(z)


def _act_grad(z: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "celu":
        return torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0)))
    if kind == "softplus":  # torch's softplus is linear above its threshold of 20
        return torch.where(z > 20, torch.ones_like(z), torch.sigmoid(z))
    return (z > 0).to(z.dtype)


class DenseICNN(nn.Module):
    r"""A convex potential :math:`\psi: \mathbb{R}^D \to \mathbb{R}` (see the module docstring).

    Parameters
    ----------
    dim : int
        Input dimension D.
    hidden : sequence of int
        Widths of the hidden layers (W2GN uses ``[max(128, D), max(128, D), max(64, D)]``, the W2
        benchmark ``[max(2D, 64), max(2D, 64), max(D, 32)]``).
    rank : int
        Rank R of the convex quadratic skip layers.
    activation : {"celu", "softplus", "relu"}
    strong_convexity : float
        :math:`s` of the :math:`\tfrac{s}{2}\|x\|^2` term.
    init_std : float
        Every parameter starts as N(0, init_std²) (then :meth:`convexify`).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 32),
        rank: int = 1,
        activation: str = "celu",
        strong_convexity: float = 1e-4,
        init_std: float = 0.1,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        self.dim, self.hidden, self.rank = dim, tuple(hidden), rank
        self.activation, self.strong_convexity = activation, float(strong_convexity)
        self.quadratic_layers = nn.ModuleList([ConvexQuadratic(dim, h, rank) for h in self.hidden])
        self.convex_layers = nn.ModuleList(
            [nn.Linear(a, b, bias=False) for a, b in zip(self.hidden[:-1], self.hidden[1:])]
        )
        self.final_layer = nn.Linear(self.hidden[-1], 1, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, init_std)
        self.convexify()

    def convexify(self) -> DenseICNN:
        """Project the z-path and final weights onto the non-negative orthant (in place)."""
        with torch.no_grad():
            torch._foreach_clamp_min_(
                [layer.weight for layer in self.convex_layers] + [self.final_layer.weight], 0.0
            )
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ψ(x), shape ``[n]``."""
        h = self.quadratic_layers[0](x)
        for quad, lin in zip(self.quadratic_layers[1:], self.convex_layers):
            h = _act(lin(h) + quad(x), self.activation)
        return self.final_layer(h).squeeze(-1) + 0.5 * self.strong_convexity * (x * x).sum(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇ψ(x) in closed form, shape ``[n, D]``, differentiable in the parameters and in ``x``."""
        projections = [q.project(x) for q in self.quadratic_layers]
        h = self.quadratic_layers[0](x, projections[0])
        slopes = []
        for quad, lin, p in zip(self.quadratic_layers[1:], self.convex_layers, projections[1:]):
            z = lin(h) + quad(x, p)
            slopes.append(_act_grad(z, self.activation))
            h = _act(z, self.activation)
        g = self.final_layer.weight.expand(x.shape[0], -1)  # dψ/dh_L
        out = self.strong_convexity * x
        for i in range(len(self.convex_layers) - 1, -1, -1):
            delta = g * slopes[i]  # dψ/dz_{i+2}
            out = out + self.quadratic_layers[i + 1].vjp(projections[i + 1], delta)
            g = delta @ self.convex_layers[i].weight
        return out + self.quadratic_layers[0].vjp(projections[0], g)

    @torch.no_grad()
    def push(self, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """∇ψ(x) without a graph, in chunks of ``chunk`` rows (for large evaluation batches)."""
        return torch.cat([self.grad(c) for c in x.split(chunk)]) if len(x) else x.clone()


class ConvICNN(nn.Module):
    r"""A convex potential of ``[C, H, W]`` images: convex quadratic convolutions of the input feed a
    stack of convolutions with non-negative weights (CELU), then a non-negative linear read-out,
    plus :math:`\tfrac{s}{2}\|x\|^2`.

    The first block is :math:`h_1 = \sum_r \mathrm{conv}_r(x)^2 + \mathrm{conv}(x)`; each later block
    adds a fresh quadratic convolution of the input (strided to its resolution) to a non-negative
    convolution of the previous block. Every z-path convolution is projected by :meth:`convexify`
    (the W2 benchmark's ConvICNN64 leaves its last three convolutions unconstrained, so its
    potential need not be convex; here all of them are).
    """

    def __init__(
        self,
        channels: int = 3,
        size: int = 32,
        width: int = 64,
        depth: int = 3,
        rank: int = 4,
        strong_convexity: float = 1e-2,
        init_std: float = 0.01,
    ):
        super().__init__()
        if size % (2**depth):
            raise ValueError(f"image size {size} must be divisible by 2**depth = {2**depth}")
        self.shape, self.rank, self.strong_convexity = (channels, size, size), rank, float(strong_convexity)
        widths = [width * 2**i for i in range(depth)]
        self.quad = nn.ModuleList()
        self.lin = nn.ModuleList()
        for i, w in enumerate(widths):
            stride = 2 ** (i + 1)
            k = stride + 2
            self.quad.append(nn.Conv2d(channels, w * rank, k, stride=stride, padding=1, bias=False))
            self.lin.append(nn.Conv2d(channels, w, k, stride=stride, padding=1))
        self.convex = nn.ModuleList([nn.Conv2d(a, b, 4, stride=2, padding=1, bias=False)
                                     for a, b in zip(widths[:-1], widths[1:])])  # fmt: skip
        final = size // 2**depth
        self.final = nn.Conv2d(widths[-1], 1, final, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, init_std)
        self.convexify()

    def convexify(self) -> ConvICNN:
        with torch.no_grad():
            for conv in [*self.convex, self.final]:
                conv.weight.clamp_(min=0)
        return self

    def _qconv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        q = self.quad[i](x) ** 2
        n, c, h, w = q.shape
        return q.view(n, c // self.rank, self.rank, h, w).sum(2) + self.lin[i](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.reshape(len(x), *self.shape)
        h = self._qconv(0, img)
        for i, conv in enumerate(self.convex, start=1):
            h = torch.celu(conv(h) + self._qconv(i, img))
        return self.final(h).flatten(1).squeeze(-1) + 0.5 * self.strong_convexity * (x * x).flatten(1).sum(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return gradient(self, x, create_graph=torch.is_grad_enabled())

    @torch.no_grad()
    def push(self, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        return torch.cat([gradient(self, c, create_graph=False) for c in x.split(chunk)])


def gradient(
    potential: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, create_graph: bool = True
) -> torch.Tensor:
    """∇f(x) of a scalar-per-sample function by autograd (``create_graph`` keeps it differentiable)."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(potential(x).sum(), x, create_graph=create_graph)
    return g


class MLP(nn.Sequential):
    """``in -> [width] * depth -> out`` with an activation between layers (maps and potentials of NOT)."""

    def __init__(
        self, in_features: int, out_features: int, width: int = 128, depth: int = 3, activation: str = "relu"
    ):
        acts = {"relu": nn.ReLU, "silu": nn.SiLU, "celu": nn.CELU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}
        if activation not in acts:
            raise ValueError(f"activation must be one of {', '.join(acts)}, got {activation!r}")
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width), acts[activation]()]
        layers.append(nn.Linear(width if depth else in_features, out_features))
        super().__init__(*layers)


class ResNetMLP(nn.Module):
    """Residual MLP: a linear stem, ``blocks`` pre-activation residual blocks, a linear head."""

    def __init__(self, in_features: int, out_features: int, width: int = 128, blocks: int = 2):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
                for _ in range(blocks)
            ]
        )
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(width, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(h)


def pretrain_identity(
    potential: nn.Module,
    dim: int,
    *,
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    scale: float = 3.0,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> float:
    """Fit ∇ψ(x) ≈ x on ``scale``·N(0, I) by MSE (Adam), projecting after each step; stop at ``tol``.

    Returns the last MSE. W2GN and the W2 benchmark start both potentials here, so the initial maps
    are the identity rather than random monotone maps.
    """
    opt = torch.optim.Adam(potential.parameters(), lr=lr)
    dev = next(potential.parameters()).device
    loss = math.inf
    for step in range(steps):
        x = scale * torch.randn(batch_size, dim, device=dev, generator=generator)
        loss_t = F.mse_loss(potential.grad(x), x)
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        opt.step()
        potential.convexify()
        if step % 25 == 24 or step == steps - 1:  # read the loss (a device sync) now and then
            loss = loss_t.item()
            if loss < tol:
                break
    return loss
