r"""Distributions with known optimal transport, as seeded samplers that work on a CPU or a GPU.

A :class:`Sampler` draws ``sample(n, generator)`` on its device (``sampler(n, generator)`` is the
same call, the protocol of :class:`papercore.train.Trainer`); ``generator`` (a ``torch.Generator`` on
the sampler's device) makes the draw reproducible. Problems with a ground-truth map are
:class:`TransportProblem` s: a source sampler ``P``, a target sampler ``Q``, the optimal map
``true_map`` (and ``true_inverse`` where known) and ``Q``'s variance, which the L2-UVP metric divides by.

* :func:`random_gaussian` and :func:`gaussian_problem`: Gaussians with random rotations and spectra
  (W2GN's construction), with the closed-form map (:mod:`papercore.ot.gaussian`);
* :class:`GaussianMixture` and :func:`random_mixture`: mixtures; :func:`random_mixture` is the
  W2 benchmark's input distribution (standardised 3-component mixtures);
* :func:`potential_problem` and :func:`icnn_problem`: the W2 benchmark's construction
  :math:`Q = \nabla\psi^\star \# P` with :math:`\psi^\star` a sum of convex networks, normalised so
  that :math:`Q` has zero mean and total variance D; the true map is :math:`\nabla\psi^\star` exactly;
  :func:`mix3tomix10` rebuilds the benchmark's own pairs from its published potentials;
* 2-D toys: :class:`SwissRoll`, :class:`Moons`, :class:`EightGaussians`, :class:`Checkerboard`;
* :func:`pairwise_barycenter`: two distributions whose (½, ½) barycentre is a known non-Gaussian
  ``Q`` (for barycentre solvers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from papercore.ot.gaussian import bures_map, bures_w2, sqrtm_psd
from papercore.ot.icnn import DenseICNN

__all__ = [
    "ArraySampler",
    "Checkerboard",
    "EightGaussians",
    "Gaussian",
    "GaussianMixture",
    "Moons",
    "PairwiseBarycenter",
    "PushforwardSampler",
    "Sampler",
    "SwissRoll",
    "TransportProblem",
    "as_sampler",
    "gaussian_problem",
    "icnn_problem",
    "mix3tomix10",
    "pairwise_barycenter",
    "potential_problem",
    "random_gaussian",
    "random_mixture",
]


class Sampler:
    """A distribution on R^dim that can be sampled: ``sample(n, generator=None) -> [n, dim]``."""

    dim: int
    device: torch.device = torch.device("cpu")

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample(n, generator)

    def to(self, device) -> Sampler:
        """This sampler on ``device`` (tensors it holds are moved in place)."""
        device = torch.device(device)
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
            elif isinstance(v, torch.nn.Module | Sampler):
                v.to(device)
        self.device = device
        return self

    def moments(self, n: int = 2**14, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte-Carlo mean and covariance (float64) from ``n`` samples."""
        x = self.sample(n, _gen(self.device, seed)).double()
        return x.mean(0), torch.cov(x.T).reshape(self.dim, self.dim)

    def _randn(self, n: int, generator) -> torch.Tensor:
        return torch.randn(n, self.dim, device=self.device, generator=generator)


def _gen(device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class Gaussian(Sampler):
    """N(mean, cov), sampled as ``mean + z Lᵀ`` with ``L = cov^{1/2}``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.cov = torch.as_tensor(cov, dtype=torch.float64)
        self.dim = self.mean.shape[0]
        if self.cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov must be [{self.dim}, {self.dim}], got {tuple(self.cov.shape)}")
        self.device = self.mean.device
        self.root = sqrtm_psd(self.cov).to(torch.float32)
        self._mean32 = self.mean.to(torch.float32)

    def sample(self, n, generator=None):
        return self._mean32 + self._randn(n, generator) @ self.root.T


def random_gaussian(
    dim: int,
    seed: int = 0,
    eig_range: tuple[float, float] = (0.5, 2.0),
    mean_scale: float = 1.0,
    device="cpu",
) -> Gaussian:
    """W2GN's random Gaussian: covariance ``A Aᵀ`` with ``A = R diag(s)``, R a random rotation and
    ``s`` log-spaced over ``eig_range``; mean N(0, mean_scale² I)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # a Haar-distributed rotation
    s = torch.exp(torch.linspace(math.log(eig_range[0]), math.log(eig_range[1]), dim, dtype=torch.float64))
    a = q * s
    mean = mean_scale * torch.randn(dim, generator=g, dtype=torch.float64)
    return Gaussian(mean.to(device), (a @ a.T).to(device))


@dataclass
class TransportProblem:
    """A pair of distributions with its optimal (quadratic-cost) map."""

    P: Sampler
    Q: Sampler
    true_map: Callable[[torch.Tensor], torch.Tensor]
    true_inverse: Callable[[torch.Tensor], torch.Tensor] | None = None
    var_P: float | None = None  # total variance E‖x - Ex‖², the L2-UVP denominators
    var_Q: float | None = None
    w2: float | None = None  # W2² when known in closed form
    name: str = ""
    potential: torch.nn.Module | None = (
        None  # the convex potential whose gradient is true_map, when there is one
    )

    @property
    def dim(self) -> int:
        return self.P.dim

    def sample_pairs(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x ~ P`` and its image ``T*(x)`` (the test pairs of L2-UVP)."""
        x = self.P.sample(n, generator)
        with torch.no_grad():
            return x, self.true_map(x)

    def to(self, device) -> TransportProblem:
        self.P.to(device)
        self.Q.to(device)
        return self


def gaussian_problem(
    dim: int, seed: int = 0, device="cpu", backend: str = "torch", **kwargs
) -> TransportProblem:
    """Two random Gaussians (:func:`random_gaussian`, seeds ``2 seed`` and ``2 seed + 1``) and their closed-form map."""
    p = random_gaussian(dim, 2 * seed, device=device, **kwargs)
    q = random_gaussian(dim, 2 * seed + 1, device=device, **kwargs)
    a, b = bures_map(p.mean, p.cov, q.mean, q.cov, backend=backend)
    ai, bi = bures_map(q.mean, q.cov, p.mean, p.cov, backend=backend)
    a, b, ai, bi = (t.to(device=device, dtype=torch.float32) for t in (a, b, ai, bi))
    return TransportProblem(
        p,
        q,
        lambda x: x @ a.T + b,
        lambda y: y @ ai.T + bi,
        var_P=float(torch.trace(p.cov)),
        var_Q=float(torch.trace(q.cov)),
        w2=bures_w2(p.mean, p.cov, q.mean, q.cov, backend=backend),
        name=f"gaussians-{dim}d-seed{seed}",
    )


class GaussianMixture(Sampler):
    """A mixture of Gaussians ``means[k] + scales[k] @ z`` with weights ``weights`` (uniform by default)."""

    def __init__(self, means: torch.Tensor, scales: torch.Tensor, weights: torch.Tensor | None = None):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.scales = torch.as_tensor(scales, dtype=torch.float32)
        k, self.dim = self.means.shape
        if self.scales.shape != (k, self.dim, self.dim):
            raise ValueError(f"scales must be [{k}, {self.dim}, {self.dim}], got {tuple(self.scales.shape)}")
        self.weights = (
            torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        )
        self.device = self.means.device

    def sample(self, n, generator=None):
        idx = torch.multinomial(self.weights.to(self.device), n, replacement=True, generator=generator)
        z = self._randn(n, generator)
        return self.means[idx] + torch.einsum("nij,nj->ni", self.scales[idx], z)


def random_mixture(dim: int, components: int = 3, seed: int = 0, std: float = 0.4, dist: float = 1.0,
                   standardized: bool = True, device="cpu") -> GaussianMixture:  # fmt: skip
    """The W2 benchmark's random mixture: centres on a grid permuted per coordinate, random unit-row
    scale maps times ``std``, scaled so that the mixture has total variance close to ``dim``.

    The construction draws from NumPy's legacy ``RandomState(seed)`` in the benchmark's order (a
    permutation per coordinate, then the maps), so ``seed=0`` rebuilds the benchmark's input
    distributions exactly.
    """
    rs = np.random.RandomState(seed)
    centers = np.zeros((components, dim), dtype=np.float32)
    for d in range(dim):
        centers[:, d] += dist * rs.choice(list(range(components)), components, replace=False)
    centers -= dist * (components - 1) / 2
    maps = rs.normal(size=(components, dim, dim)).astype(np.float32)
    maps /= np.sqrt((maps**2).sum(axis=2, keepdims=True))
    if standardized:
        mult = np.sqrt((centers**2).sum(axis=1).mean() + dim * std**2) / np.sqrt(dim)
        centers /= mult
        maps /= mult
    return GaussianMixture(torch.from_numpy(centers).to(device), torch.from_numpy(maps * std).to(device))


class PushforwardSampler(Sampler):
    """``f # base``: samples ``f(x)`` for ``x ~ base`` (``f`` evaluated without a graph)."""

    def __init__(self, base: Sampler, f: Callable[[torch.Tensor], torch.Tensor], dim: int | None = None):
        self.base, self.f = base, f
        self.dim = dim or base.dim
        self.device = base.device

    def sample(self, n, generator=None):
        return self.f(self.base.sample(n, generator))

    def to(self, device):
        self.base.to(device)
        if isinstance(self.f, torch.nn.Module):
            self.f.to(device)
        self.device = torch.device(device)
        return self


class _Potential(torch.nn.Module):
    """ψ = scale · (Σ_k ψ_k − ⟨shift, x⟩): a sum of convex potentials, standardised."""

    def __init__(self, parts: Sequence[torch.nn.Module], dim: int):
        super().__init__()
        self.parts = torch.nn.ModuleList(parts)
        self.register_buffer("shift", torch.zeros(dim))
        self.scale = 1.0

    def forward(self, x):
        return self.scale * (sum(p(x) for p in self.parts) - x @ self.shift)

    def grad(self, x):
        return self.scale * (sum(p.grad(x) for p in self.parts) - self.shift)

    @torch.no_grad()
    def push(self, x, chunk: int = 65536):
        return torch.cat([self.grad(c) for c in x.split(chunk)]) if len(x) else x.clone()


def potential_problem(P: Sampler, potentials: Sequence[torch.nn.Module], *, estimate: int = 2**14, seed: int = 0,
                      name: str = "") -> TransportProblem:  # fmt: skip
    r"""``Q = ∇ψ # P`` for ``ψ`` = the sum of ``potentials`` (each convex, with a ``grad``), shifted and
    scaled as the W2 benchmark does so that ``Q`` has zero mean and total variance ``D``
    (estimated on ``estimate`` samples). The true map is ``∇ψ`` (exact); its inverse is not known
    in closed form."""
    psi = _Potential(potentials, P.dim).to(P.device)
    for p in psi.parameters():
        p.requires_grad_(False)
    x = P.sample(estimate, _gen(P.device, seed))
    y = psi.push(x)
    mean = y.mean(0)
    var = (y - mean).var(0).mean()
    psi.shift.copy_(mean)
    psi.scale = float(var.rsqrt())
    var_p = float(((x - x.mean(0)) ** 2).sum(1).mean())
    return TransportProblem(P, PushforwardSampler(P, psi.push), psi.push, None, var_P=var_p, var_Q=float(P.dim),
                            name=name, potential=psi)  # fmt: skip


def benchmark_hidden(dim: int) -> list[int]:
    """The W2 benchmark's DenseICNN widths: ``[max(2D, 64), max(2D, 64), max(D, 32)]``."""
    return [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]


def icnn_problem(
    dim: int, seed: int = 0, components: int = 3, init_std: float = 0.5, device="cpu"
) -> TransportProblem:
    r"""A W2-benchmark-style pair of our own: P is a random ``components``-mixture
    (:func:`random_mixture`, seed ``seed``) and :math:`\psi^\star = \psi_1 + \psi_2`, two random
    DenseICNNs (benchmark widths, rank 1, strong convexity 1e-2, CELU, weights N(0, ``init_std``²)
    projected to convexity), standardised (:func:`potential_problem`).

    Each hidden unit's bias is then shifted so that its pre-activation has median 0 on P: half the
    units are active at a typical point, and the map is far from linear. Without the shift a random
    ICNN's pre-activations are almost all positive, CELU acts as the identity, ψ is nearly
    quadratic and the linear (Bures) baseline is nearly exact. With it, the identity and linear
    baselines land in the range of the W2 benchmark's pairs (linear L2-UVP 15–35% for D = 2–32).
    """
    from papercore.ot.icnn import _act

    g = torch.Generator().manual_seed(10_000 + seed)
    P = random_mixture(dim, components, seed=seed)
    x = P.sample(4096, _gen("cpu", seed + 1))
    nets = []
    for _ in range(2):
        net = DenseICNN(dim, benchmark_hidden(dim), rank=1, strong_convexity=1e-2)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * init_std)
            net.convexify()
            h = net.quadratic_layers[0](x)
            for quad, lin in zip(net.quadratic_layers[1:], net.convex_layers):
                quad.bias -= (lin(h) + quad(x)).median(0).values
                h = _act(lin(h) + quad(x), net.activation)
        nets.append(net.to(device))
    return potential_problem(P.to(device), nets, seed=seed, name=f"icnn-{dim}d-seed{seed}")


def mix3tomix10(dim: int, pairs: str | os.PathLike, device="cpu", seed: int = 0) -> TransportProblem:
    """The W2 benchmark's Mix3toMix10 pair of dimension ``dim`` from its published potentials
    ``{dim}_v1.pt`` and ``{dim}_v2.pt`` in the folder ``pairs`` (the repository's
    ``benchmarks/Mix3toMix10``), loaded as tensors only (``torch.load(..., weights_only=True)``).

    P is the benchmark's 3-component mixture (NumPy seed 0, rebuilt exactly); the standardising
    shift and scale are re-estimated on 2^14 samples of our own, as the benchmark estimates them on
    its own draw.
    """
    pairs = Path(pairs)
    nets = []
    for v in (1, 2):
        f = pairs / f"{dim}_v{v}.pt"
        if not f.is_file():
            raise FileNotFoundError(
                f"no {f.name} in {pairs}: pass the W2 benchmark's benchmarks/Mix3toMix10 folder"
            )
        state = torch.load(f, map_location="cpu", weights_only=True)
        net = DenseICNN(dim, benchmark_hidden(dim), rank=1, strong_convexity=1e-2)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(
                f"{f} is not a {dim}-dimensional W2-benchmark DenseICNN: {str(e).splitlines()[0]}"
            ) from e
        nets.append(net.to(device))
    P = random_mixture(dim, 3, seed=0, device=device)
    return potential_problem(P, nets, seed=seed, name=f"mix3tomix10-{dim}d")


class ArraySampler(Sampler):
    """Uniform draws (with replacement) from the rows of an array: a user's data as a sampler."""

    def __init__(self, data):
        self.data = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        if self.data.ndim != 2:
            raise ValueError(f"data must be an [n, dim] array, got shape {tuple(self.data.shape)}")
        self.dim = self.data.shape[1]
        self.device = self.data.device

    def sample(self, n, generator=None):
        idx = torch.randint(0, len(self.data), (n,), device=self.device, generator=generator)
        return self.data[idx]


def as_sampler(data, name: str = "data", min_samples: int = 1) -> Sampler:
    """A :class:`Sampler` from a sampler or an ``[n, d]`` array, checked (one clear error per problem)."""
    if isinstance(data, Sampler):
        return data
    try:
        arr = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a sampler or a numeric [n, d] array: {e}") from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be an [n, d] array of n points in d dimensions, got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(1)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} row(s) with NaN or inf (first: row {int(np.argmax(bad))}): clean or drop them"
        )
    if len(arr) < min_samples:
        raise ValueError(
            f"{name} has {len(arr)} samples, fewer than one batch ({min_samples}): lower --batch-size or add data"
        )
    return ArraySampler(arr)


# ---------------------------------------------------------------------------------------- 2-D toys
class SwissRoll(Sampler):
    """The 2-D Swiss roll (scikit-learn's curve, scaled to unit-ish variance) with Gaussian noise."""

    dim = 2

    def __init__(self, noise: float = 0.1, device="cpu"):
        self.noise, self.device = noise, torch.device(device)

    def sample(self, n, generator=None):
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, device=self.device, generator=generator))
        x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.5
        return x + self.noise * self._randn(n, generator)


class Moons(Sampler):
    """Two interleaving half circles (scikit-learn's ``make_moons`` layout), centred."""

    dim = 2

    def __init__(self, noise: float = 0.05, device="cpu"):
        self.noise, self.device = noise, torch.device(device)

    def sample(self, n, generator=None):
        t = math.pi * torch.rand(n, device=self.device, generator=generator)
        upper = torch.rand(n, device=self.device, generator=generator) < 0.5
        x = torch.where(upper[:, None], torch.stack([torch.cos(t), torch.sin(t)], 1),
                        torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1))  # fmt: skip
        return (x - torch.tensor([0.5, 0.25], device=self.device)) * 1.5 + self.noise * self._randn(
            n, generator
        )


class EightGaussians(Sampler):
    """Eight Gaussians on a circle of radius ``radius``."""

    dim = 2

    def __init__(self, radius: float = 2.0, std: float = 0.15, device="cpu"):
        self.radius, self.std, self.device = radius, std, torch.device(device)

    def sample(self, n, generator=None):
        k = torch.randint(0, 8, (n,), device=self.device, generator=generator)
        angle = k.float() * (math.pi / 4)
        centers = self.radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        return centers + self.std * self._randn(n, generator)


class Checkerboard(Sampler):
    """Uniform on the black squares of a 4x4 checkerboard over [-2, 2]²."""

    dim = 2

    def __init__(self, device="cpu"):
        self.device = torch.device(device)

    def sample(self, n, generator=None):
        x1 = 4 * torch.rand(n, device=self.device, generator=generator) - 2
        col = torch.randint(0, 2, (n,), device=self.device, generator=generator).float() * 2
        x2 = col - 2 + torch.rand(n, device=self.device, generator=generator) + (torch.floor(x1) % 2)
        return torch.stack([x1, x2], 1)


TOYS: dict[str, type[Sampler]] = {"swiss_roll": SwissRoll, "moons": Moons, "8gaussians": EightGaussians,
                                   "checkerboard": Checkerboard}  # fmt: skip


# ---------------------------------------------------------------------------------------- barycentres
@dataclass
class PairwiseBarycenter:
    r"""Two distributions :math:`P_1, P_2` whose :math:`(\tfrac12, \tfrac12)` W2 barycentre ``Q`` is known.

    For a convex ψ and any :math:`P_1`, let :math:`P_2 = \nabla\psi\#P_1` and
    :math:`Q = (\tfrac12\mathrm{id} + \tfrac12\nabla\psi)\#P_1`. The maps from ``Q`` are
    :math:`T_1 = (\tfrac12\mathrm{id} + \tfrac12\nabla\psi)^{-1}` and :math:`T_2 = \nabla\psi \circ T_1`,
    gradients of convex functions with :math:`\tfrac12 T_1 + \tfrac12 T_2 = \mathrm{id}`, so ``Q`` is
    the barycentre (Álvarez-Esteban et al.'s fixed point holds). Everything is sampled forward from
    :math:`x_1 \sim P_1` (:meth:`sample_joint`), so no map needs inverting to draw data or test pairs;
    ``to_barycenter[0]`` is exact and cheap, the maps that invert ∇ψ solve it by Newton's method.
    """

    P1: Sampler
    psi: torch.nn.Module

    @property
    def weights(self) -> tuple[float, float]:
        return (0.5, 0.5)

    def _half(self, x):
        with torch.no_grad():
            return 0.5 * x + 0.5 * self.psi.grad(x)

    def _grad(self, x):
        with torch.no_grad():
            return self.psi.grad(x)

    @property
    def Q(self) -> Sampler:
        return PushforwardSampler(self.P1, self._half)

    @property
    def marginals(self) -> list[Sampler]:
        return [self.P1, PushforwardSampler(self.P1, self._grad)]

    def sample_joint(self, n: int, generator=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        r"""``y ~ Q`` and its images ``[x_1, x_2] = [T_1(y), T_2(y)]`` from one draw of :math:`x_1 \sim P_1`."""
        x1 = self.P1.sample(n, generator)
        x2 = self._grad(x1)
        return 0.5 * (x1 + x2), [x1, x2]

    @property
    def to_barycenter(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Exact maps :math:`P_k \to Q` (the second inverts ∇ψ by Newton's method)."""
        return [self._half, lambda x2: 0.5 * (_solve_grad_inverse(self.psi, x2) + x2)]

    @property
    def from_barycenter(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Exact maps :math:`Q \to P_k` (both invert ½id + ½∇ψ by Newton's method)."""
        return [lambda y: _solve_half_map(self.psi, y), lambda y: 2 * y - _solve_half_map(self.psi, y)]


def _solve_half_map(psi, y: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    r"""``x`` with ``½x + ½∇ψ(x) = y`` (the minimiser of the strongly convex ``¼‖x‖² + ½ψ(x) − ⟨x, y⟩``), by
    Newton steps with a backtracking line search on that objective, rows solved independently, in float64."""
    import copy

    dtype = y.dtype
    psi = copy.deepcopy(psi).double()
    y = y.detach().double()
    x = y.clone()

    def objective(z):
        with torch.no_grad():
            return 0.25 * (z * z).sum(1) + 0.5 * psi(z) - (z * y).sum(1)

    for _ in range(iters):
        with torch.enable_grad():
            z = x.requires_grad_(True)
            g = 0.5 * z + 0.5 * psi.grad(z) - y
            rows = [
                torch.autograd.grad(g[:, i].sum(), z, retain_graph=i < z.shape[1] - 1)[0]
                for i in range(z.shape[1])
            ]
        g = g.detach()
        x = x.detach()
        if float(g.norm(dim=1).max()) < tol:
            break
        step = torch.linalg.solve(torch.stack(rows, 1), g.unsqueeze(-1)).squeeze(-1)  # H = ½I + ½∇²ψ
        f0, t = objective(x), torch.ones(len(x), 1, device=x.device, dtype=x.dtype)
        for _ in range(30):
            ok = objective(x - t * step) <= f0 - 0.25 * t.squeeze(1) * (step * g).sum(1) + 1e-12
            if bool(ok.all()):
                break
            t = torch.where(ok[:, None], t, 0.5 * t)
        x = x - t * step
    return x.detach().to(dtype)


def pairwise_barycenter(P1: Sampler, psi: torch.nn.Module) -> PairwiseBarycenter:
    r"""The non-Gaussian barycentre construction of :class:`PairwiseBarycenter` for a convex ``psi``
    (with ``forward`` and ``grad``, e.g. a :class:`DenseICNN` with strong convexity > 0) and any ``P1``."""
    for p in psi.parameters():
        p.requires_grad_(False)
    return PairwiseBarycenter(P1, psi)


def _solve_grad_inverse(psi, target: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """``x`` with ``∇ψ(x) = target`` (the minimiser of ``ψ(x) − ⟨x, target⟩``), through the half-map solver."""
    return _solve_half_map(_ShiftedHalf(psi, target), torch.zeros_like(target), iters=iters, tol=tol)


class _ShiftedHalf(torch.nn.Module):
    """A potential φ with ½z + ½∇φ(z) = ∇ψ(z) − target, so the half-map solver at y = 0 inverts ∇ψ."""

    def __init__(self, psi, target):
        super().__init__()
        self.psi = psi
        self.register_buffer("target", target)

    def forward(self, z):
        return 2 * self.psi(z) - 2 * (z * self.target).sum(1) - 0.5 * (z * z).sum(1)

    def grad(self, z):
        return 2 * self.psi.grad(z) - 2 * self.target - z
