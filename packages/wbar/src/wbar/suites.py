r"""Barycentre problems with known truth.

* :func:`location_scatter`: :math:`P_k = \mathrm{Law}(A_k X + b_k)` for a standardised base :math:`X`
  (Gaussian, uniform on a cube, or Swiss rolls) and random SPD :math:`A_k` with eigenvalues in
  [0.5, 2]. In such a location-scatter family the barycentre is the member with mean
  :math:`\sum_k \alpha_k b_k` and the Bures fixed-point covariance of the :math:`A_k^2`
  (Álvarez-Esteban, del Barrio, Cuesta-Albertos, Matrán 2016), so BW2-UVP measures a generator
  against the exact statistics.
* :func:`nongaussian`: the pairwise construction of :func:`papercore.ot.samplers.pairwise_barycenter`:
  a random convex potential ψ and a mixture :math:`P_1` give :math:`P_2 = \nabla\psi\#P_1`, whose
  (½, ½) barycentre is exactly :math:`Q = (\tfrac12\mathrm{id} + \tfrac12\nabla\psi)\#P_1`, with
  test triples :math:`(y, T_1(y), T_2(y))` drawn forward from one :math:`x_1 \sim P_1`.
* :func:`ave_synth` (:mod:`wbar.synth`): an image barycentre with image-level truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from papercore.ot.gaussian import bures_barycenter, sqrtm_psd
from papercore.ot.samplers import (
    PushforwardSampler,
    Sampler,
    SwissRoll,
    icnn_problem,
    pairwise_barycenter,
)

BASES = ("gaussian", "uniform", "swiss_roll")


@dataclass
class BarycenterProblem:
    """Marginals, weights and what is known of their barycentre."""

    marginals: list[Sampler]
    weights: tuple[float, ...]
    name: str
    mean: torch.Tensor | None = None  # the barycentre's mean and covariance (float64)
    cov: torch.Tensor | None = None
    truth: Sampler | None = None  # samples of the barycentre itself, when known
    to_barycenter: list[Callable] | None = None  # exact maps P_k -> barycentre
    from_barycenter: list[Callable] | None = None  # exact maps barycentre -> P_k
    image_shape: tuple[int, ...] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.marginals[0].dim


class _Base(Sampler):
    """A standardised base distribution (zero mean, identity covariance) in ``dim`` dimensions."""

    def __init__(self, kind: str, dim: int, device="cpu"):
        if kind not in BASES:
            raise ValueError(f"unknown base {kind!r}: choose from {', '.join(BASES)}")
        if kind == "swiss_roll" and dim % 2:
            raise ValueError(f"the swiss_roll base stacks 2-D rolls: the dimension must be even, got {dim}")
        self.kind, self.dim, self.device = kind, dim, torch.device(device)
        if kind == "swiss_roll":  # whiten the 2-D roll once, from many draws
            roll = SwissRoll(noise=0.05).sample(2**20, torch.Generator().manual_seed(12345)).double()
            mean, cov = roll.mean(0), torch.cov(roll.T)
            w, v = torch.linalg.eigh(cov)
            self.roll = SwissRoll(noise=0.05, device=device)
            self.shift = mean.float().to(device)
            self.whiten = ((v * w.rsqrt()) @ v.T).float().to(device)

    def sample(self, n, generator=None):
        if self.kind == "gaussian":
            return torch.randn(n, self.dim, device=self.device, generator=generator)
        if self.kind == "uniform":
            return math.sqrt(3) * (2 * torch.rand(n, self.dim, device=self.device, generator=generator) - 1)
        parts = [(self.roll.sample(n, generator) - self.shift) @ self.whiten.T for _ in range(self.dim // 2)]
        return torch.cat(parts, 1)


def _spd(dim: int, g: np.random.Generator, eig_range=(0.5, 2.0)) -> np.ndarray:
    q, _ = np.linalg.qr(g.normal(size=(dim, dim)))
    e = np.exp(g.uniform(np.log(eig_range[0]), np.log(eig_range[1]), dim))
    return (q * e) @ q.T


def location_scatter(dim: int, k: int = 3, base: str = "gaussian", seed: int = 0, weights: Sequence[float] | None = None,
                     device="cpu") -> BarycenterProblem:  # fmt: skip
    """``k`` marginals ``A_k X + b_k`` of a standardised ``base``; truth by the Bures fixed point."""
    g = np.random.default_rng(seed)
    X = _Base(base, dim, device)
    mats = [_spd(dim, g) for _ in range(k)]
    shifts = [g.normal(size=dim) for _ in range(k)]
    w = tuple(float(a) for a in (weights if weights is not None else [1.0 / k] * k))
    marginals = []
    for a, b in zip(mats, shifts):
        at, bt = (
            torch.tensor(a, dtype=torch.float32, device=device),
            torch.tensor(b, dtype=torch.float32, device=device),
        )
        marginals.append(PushforwardSampler(X, lambda x, at=at, bt=bt: x @ at.T + bt))
    mean, cov = bures_barycenter([torch.tensor(b) for b in shifts], [torch.tensor(a @ a) for a in mats], w)
    root, m = sqrtm_psd(cov).float().to(device), mean.float().to(device)
    truth = PushforwardSampler(
        X, lambda x: x @ root.T + m
    )  # the family's member with the barycentre's moments
    return BarycenterProblem(
        marginals, w, f"location-scatter-{base}-{dim}d-seed{seed}", mean=mean, cov=cov, truth=truth
    )


class _Quadratic(torch.nn.Module):
    """ψ + ½μ‖x‖²: the same potential made μ-strongly convex (so ∇ψ cannot flatten a region)."""

    def __init__(self, psi: torch.nn.Module, mu: float):
        super().__init__()
        self.psi, self.mu = psi, mu

    def forward(self, x):
        return self.psi(x) + 0.5 * self.mu * (x * x).sum(-1)

    def grad(self, x):
        return self.psi.grad(x) + self.mu * x


def nongaussian(
    seed: int = 0, dim: int = 2, strong_convexity: float = 0.5, device="cpu"
) -> BarycenterProblem:
    """The pairwise construction in ``dim`` dimensions: ``P1`` the W2-benchmark-style mixture, ψ the
    standardised sum of random convex networks of :func:`papercore.ot.samplers.icnn_problem` plus
    ``½·strong_convexity·‖x‖²``, ``P2 = ∇ψ#P1``, and the truth ``Q = (½id + ½∇ψ)#P1``.

    The quadratic term keeps ∇ψ bi-Lipschitz: without it a random ICNN can map a whole region to
    nearly one point, and the inverse map from ``P2`` (Algorithm 2) is then ill-posed for any
    smooth network (measured: inverse L2-UVP 5-14% however long the inverse NOT trains).
    """
    base = icnn_problem(dim, seed, device=device)
    psi = _Quadratic(base.potential, strong_convexity) if strong_convexity else base.potential
    bary = pairwise_barycenter(base.P, psi)
    x = bary.Q.sample(2**15, torch.Generator(device=device).manual_seed(seed)).double()
    return BarycenterProblem(bary.marginals, bary.weights, f"nongaussian-{dim}d-seed{seed}", mean=x.mean(0),
                             cov=torch.cov(x.T), truth=bary.Q, to_barycenter=bary.to_barycenter,
                             from_barycenter=bary.from_barycenter, extra={"joint": bary.sample_joint})  # fmt: skip
