r"""Cost functionals :math:`F(\pi)` of the stochastic plan :math:`\pi_T = \mathrm{Law}(x, T(x, z))`.

GNOT (Asadulaev et al., ICLR 2024) solves :math:`\inf_{\pi \in \Pi(P)} F(\pi)` subject to the
second marginal of :math:`\pi` being :math:`Q`, through the max-min problem

.. math::

    \sup_f \inf_T\; F(\pi_T) - \mathbb{E}_{x, z}\, f(T(x, z)) + \mathbb{E}_{y \sim Q}\, f(y).

A :class:`Functional` estimates :math:`F(\pi_T)` on a :class:`Batch`: ``n`` source points ``x``,
``Z`` noise draws each (``tx`` is ``[n, Z, d]``) and whatever side data the functional asks for
(source labels and labelled targets of the same classes, or paired targets). Subclass it and
implement :meth:`Functional.cost`; the solver adds the potential term. Built in:

* :class:`StrongCost`: :math:`F(\pi) = \int c(x, y)\,d\pi`, quadratic or any torch function
  ``c(x, y) -> [n]`` (NOT);
* :class:`WeakQuadratic`: the γ-weak quadratic cost
  :math:`\int \big[\tfrac12\|x - \bar y\|^2 + \tfrac{1-\gamma}{2}\operatorname{Var}(\pi(\cdot|x))\big] dP(x)`,
  estimated without bias as :math:`\operatorname{mean}_z \tfrac12\|x - T(x,z)\|^2 - \tfrac{\gamma}{2}\widehat{\operatorname{Var}}_z T(x, z)`
  (unbiased variance over the Z draws; NOT's weak cost). γ may ramp up over the first steps;
* :class:`ClassGuided`: :math:`F(\pi) = \sum_n \alpha_n \mathcal{E}(T\#(P_n \times S), Q_n)` with
  the energy distance :math:`\mathcal{E}(A, B) = 2\mathbb{E}\|a - b\| - \mathbb{E}\|a - a'\| - \mathbb{E}\|b - b'\|`
  between class :math:`n`'s transported source and its few labelled targets (the last term is a
  constant and dropped; the intra term is the U-statistic over distinct pairs);
* :class:`PairGuided`: :math:`F(\pi) = \mathbb{E}\,\ell(T(x, z), y_x)` for paired data, ℓ = MSE, MAE,
  RMSE, or MSE in a feature network (a "perceptual" loss in a locally trained net).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Batch", "ClassGuided", "Functional", "PairGuided", "StrongCost", "WeakQuadratic", "parse_cost"]


@dataclass
class Batch:
    """What a functional sees in one map update.

    ``x``: ``[n, d]`` source points; ``tx``: ``[n, Z, d]`` their images under Z noise draws;
    ``labels``: ``[n]`` source classes (class-guided); ``y``/``y_labels``: labelled targets and their
    classes (class-guided), or ``y``: ``[n, d]`` the paired target of each x (pair-guided);
    ``step``: the max-min step; ``ramp``: the schedule's progress in [0, 1].
    """

    x: torch.Tensor
    tx: torch.Tensor
    labels: torch.Tensor | None = None
    y: torch.Tensor | None = None
    y_labels: torch.Tensor | None = None
    step: int = 0
    ramp: float = 1.0


class Functional(torch.nn.Module):
    """A cost functional F(π) of the stochastic plan; subclasses implement :meth:`cost`.

    Class attributes say what the solver must draw: ``needs_labels`` (class-balanced batches of
    labelled source with labelled targets of the same classes), ``needs_pairs`` (source row i
    paired with target row i). A functional may hold networks (e.g. a frozen feature net).
    """

    needs_labels: bool = False
    needs_pairs: bool = False
    name: str = "functional"

    def cost(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: Batch) -> torch.Tensor:
        value = self.cost(batch)
        if value.ndim != 0:
            raise ValueError(
                f"{type(self).__name__}.cost must return a scalar, got shape {tuple(value.shape)}"
            )
        return value

    def describe(self) -> dict:
        """JSON-able description saved with a fitted map."""
        return {"name": self.name}


def quadratic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r""":math:`\tfrac12\|x - y\|^2` per pair."""
    return 0.5 * (x - y).pow(2).sum(-1)


class StrongCost(Functional):
    """:math:`\\int c(x, y)\\,d\\pi`: ``c(x, y)`` gets ``[m, d]`` pairs and must return ``[m]`` finite values."""

    def __init__(self, cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.c = cost or quadratic
        self.name = "quadratic" if cost is None else getattr(cost, "__name__", "custom")

    def cost(self, b: Batch) -> torch.Tensor:
        n, Z, d = b.tx.shape
        xr = b.x[:, None].expand(n, Z, d).reshape(n * Z, d)
        c = self.c(xr, b.tx.reshape(n * Z, d))
        if not isinstance(c, torch.Tensor) or c.shape != (n * Z,):
            got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise ValueError(
                f"the cost function returned {got} for the batch of step {b.step} ({n * Z} pairs): "
                f"it must return one value per pair, shape ({n * Z},)"
            )
        if not torch.isfinite(c).all():
            bad = int((~torch.isfinite(c)).nonzero()[0, 0])
            raise ValueError(
                f"the cost function returned a non-finite value in the batch of step {b.step} "
                f"(pair {bad} of {n * Z}): make it finite for every input"
            )
        return c.mean()


class WeakQuadratic(Functional):
    """The γ-weak quadratic cost (NOT): γ = 0 is the strong quadratic cost; larger γ rewards spread."""

    def __init__(self, gamma: float = 0.66):
        super().__init__()
        if not 0 <= gamma <= 1:
            raise ValueError(f"the weak cost needs 0 <= gamma <= 1, got {gamma}")
        self.gamma = float(gamma)
        self.name = f"weak:{gamma:g}"

    def cost(self, b: Batch) -> torch.Tensor:
        n, Z, d = b.tx.shape
        strong = 0.5 * (b.tx - b.x[:, None]).pow(2).sum(-1).mean()
        if Z < 2 or self.gamma == 0:
            return strong
        var = b.tx.var(1, unbiased=True).sum(-1).mean()
        return strong - 0.5 * self.gamma * b.ramp * var

    def describe(self) -> dict:
        return {"name": self.name, "gamma": self.gamma}


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[..., len(a), len(b)]`` (batched over leading dims), finite gradient at 0."""
    return ((a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1) + 1e-12).sqrt()


def _energy(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathbb{E}\\|t - y\\| - \\tfrac12 \\mathbb{E}_{i \\neq j}\\|t_i - t_j\\|` per leading index."""
    m = t.shape[-2]
    cross = _dist(t, y).mean((-1, -2))
    intra = _dist(t, t).sum((-1, -2)) / (m * (m - 1)) if m > 1 else torch.zeros_like(cross)
    return cross - 0.5 * intra


class ClassGuided(Functional):
    """Class-guided energy functional (GNOT dataset transfer); needs labelled source and a few labelled targets.

    Classes present in the batch are weighted equally (α_n = 1/#classes). Batches drawn by the
    solver come in equal per-class blocks and are evaluated in one batched call."""

    needs_labels = True
    name = "class-guided"

    def cost(self, b: Batch) -> torch.Tensor:
        n, Z, d = b.tx.shape
        classes = torch.unique_consecutive(b.labels)
        k = len(classes)
        if n % k == 0 and len(b.y) % k == 0 and len(torch.unique(classes)) == k:
            lx, ly = b.labels.reshape(k, -1), b.y_labels.reshape(k, -1)
            if bool((lx == classes[:, None]).all() and (ly == classes[:, None]).all()):
                return _energy(b.tx.reshape(k, -1, d), b.y.reshape(k, -1, d)).mean()
        parts = [
            _energy(b.tx[b.labels == c].reshape(-1, d), b.y[b.y_labels == c]) for c in torch.unique(b.labels)
        ]
        return torch.stack(parts).mean()


class PairGuided(Functional):
    """Pair-guided functional: ``loss(T(x, z), y_x)`` averaged over z, for mse, mae, rmse or perceptual."""

    needs_pairs = True
    LOSSES = ("mse", "mae", "rmse", "perceptual")

    def __init__(self, loss: str = "mse", features: torch.nn.Module | None = None):
        super().__init__()
        if loss not in self.LOSSES:
            raise ValueError(f"pair-guided loss must be one of {', '.join(self.LOSSES)}, got {loss!r}")
        if loss == "perceptual" and features is None:
            raise ValueError("the perceptual pair-guided loss needs a feature network (features=...)")
        self.loss = loss
        self.features = features.requires_grad_(False).eval() if features is not None else None
        self.name = f"pair-guided:{loss}"

    def cost(self, b: Batch) -> torch.Tensor:
        n, Z, d = b.tx.shape
        t, y = b.tx.reshape(n * Z, d), b.y[:, None].expand(n, Z, d).reshape(n * Z, d)
        if self.loss == "perceptual":
            t, y = self.features(t), self.features(y).detach()
        err = (t - y).flatten(1)
        if self.loss == "mae":
            return err.abs().mean()
        if self.loss == "rmse":
            return (err.pow(2).mean(1) + 1e-12).sqrt().mean()
        return err.pow(2).mean()

    def describe(self) -> dict:
        return {"name": self.name, "loss": self.loss}


COSTS = "quadratic, weak:GAMMA, class-guided, pair-guided[:mse|mae|rmse|perceptual]"


def parse_cost(spec, features: torch.nn.Module | None = None) -> Functional:
    """A :class:`Functional` from a name (``quadratic``, ``weak:0.5``, ``class-guided``,
    ``pair-guided:mae``), a torch cost function ``c(x, y) -> [n]``, or a Functional (returned as is)."""
    if isinstance(spec, Functional):
        return spec
    if callable(spec):
        return StrongCost(spec)
    if not isinstance(spec, str):
        raise ValueError(f"cost must be a name ({COSTS}), a function c(x, y) or a Functional, got {spec!r}")
    name, _, arg = spec.partition(":")
    if name == "quadratic" and not arg:
        return StrongCost()
    if name == "weak":
        try:
            return WeakQuadratic(float(arg))
        except ValueError as e:
            raise ValueError(f"cost {spec!r}: write weak:GAMMA with 0 <= GAMMA <= 1 ({e})") from None
    if name == "class-guided" and not arg:
        return ClassGuided()
    if name == "pair-guided":
        return PairGuided(arg or "mse", features)
    raise ValueError(f"unknown cost {spec!r}: choose from {COSTS}")
