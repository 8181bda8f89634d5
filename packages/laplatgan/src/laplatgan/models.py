r"""The networks: a PointNet autoencoder per level, latent generators and critics, and the WGAN-GP penalty.

* :class:`PointNetEncoder`: shared 1×1 convolutions with BatchNorm and ReLU, then a max over points,
  so the code :math:`f(X) = \max_i h(x_i)` is invariant to the order of the points and non-negative;
* :class:`Decoder`: an MLP from the code to ``3N`` coordinates;
* :class:`Generator`: :math:`z \mapsto` code (level 1, l-GAN) or :math:`(z, c) \mapsto r` (a residual,
  levels 2+: the code is :math:`r + c`);
* :class:`Critic`: an MLP on a code (and, for a conditional critic, on :math:`c` too);
* :func:`gradient_penalty`: :math:`\lambda\,\mathbb{E}_{\hat x}(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2` on
  :math:`\hat x = \alpha x_{real} + (1 - \alpha) x_{fake}`, :math:`\alpha \sim U[0, 1]` per sample.
"""

from __future__ import annotations

import torch
from torch import nn


class PointNetEncoder(nn.Module):
    """``[B, N, 3] -> [B, bottleneck]``: 1×1 convolutions (BatchNorm, ReLU), then a max over the points."""

    def __init__(self, widths=(64, 128, 128, 256), bottleneck: int = 128):
        super().__init__()
        layers, c = [], 3
        for w in (*widths, bottleneck):
            layers += [nn.Conv1d(c, w, 1), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).amax(2)


def mlp(sizes, out_act: nn.Module | None = None) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """``[B, bottleneck] -> [B, N, 3]``: fully connected layers with ReLU (no BatchNorm)."""

    def __init__(self, bottleneck: int, n_points: int, hidden=(256, 256)):
        super().__init__()
        self.n_points = n_points
        self.net = mlp([bottleneck, *hidden, 3 * n_points])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), self.n_points, 3)


class AutoEncoder(nn.Module):
    """A PointNet autoencoder for clouds of ``n_points`` points."""

    def __init__(self, n_points: int, widths=(64, 128, 128, 256), bottleneck: int = 128, hidden=(256, 256)):
        super().__init__()
        self.n_points = n_points
        self.encoder = PointNetEncoder(widths, bottleneck)
        self.decoder = Decoder(bottleneck, n_points, hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.n_points:
            raise ValueError(f"this autoencoder takes clouds of {self.n_points} points, got {x.shape[1]}")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class Generator(nn.Module):
    """``z -> code`` (``cond_dim = 0``) or ``(z, c) -> residual`` (``cond_dim > 0``)."""

    def __init__(self, z_dim: int, code_dim: int, hidden=(128,), cond_dim: int = 0, output: str = "relu"):
        super().__init__()
        self.z_dim, self.cond_dim = z_dim, cond_dim
        layers, a = [], z_dim + cond_dim
        for h in hidden:
            layers += [nn.Linear(a, h), nn.ReLU()]
            if output == "batchnorm":  # the notebook: Linear -> ReLU -> BatchNorm -> Linear -> BatchNorm
                layers.append(nn.BatchNorm1d(h))
            a = h
        layers.append(nn.Linear(a, code_dim))
        if output == "relu":
            layers.append(nn.ReLU())
        elif output == "batchnorm":
            layers.append(nn.BatchNorm1d(code_dim))
        elif output != "linear":
            raise ValueError(f"output must be relu, batchnorm or linear, got {output!r}")
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z if c is None else torch.cat([z, c], 1))


class Critic(nn.Module):
    """``code (+ c) -> score``: an MLP with ReLU."""

    def __init__(self, code_dim: int, hidden=(256, 512), cond_dim: int = 0):
        super().__init__()
        self.cond_dim = cond_dim
        self.net = mlp([code_dim + cond_dim, *hidden, 1])

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x if c is None else torch.cat([x, c], 1))[:, 0]


def gradient_penalty(
    critic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor | None = None, generator=None
) -> torch.Tensor:
    """WGAN-GP's :math:`\\mathbb{E}(\\|\\nabla D(\\hat x)\\| - 1)^2` on random interpolates of ``real`` and ``fake``
    (the gradient is taken with respect to the code, not the condition)."""
    alpha = torch.rand(len(real), 1, generator=generator, device=real.device, dtype=real.dtype)
    x = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    score = critic(x, cond) if cond is not None else critic(x)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()
