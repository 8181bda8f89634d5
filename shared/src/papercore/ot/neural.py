r"""The max-min core of Neural Optimal Transport (NOT; Korotin, Selikhanovych, Burnaev, ICLR 2023).

For a cost :math:`c`, NOT solves

.. math:: \sup_f \inf_T\; \mathbb{E}_{x\sim P}\big[c(x, T(x)) - f(T(x))\big] + \mathbb{E}_{y\sim Q}\, f(y)

with a map network :math:`T` and a potential network :math:`f`: ``map_steps`` steps of :math:`T` on
:func:`map_loss`, then one step of :math:`f` on :func:`potential_loss` (:func:`not_round`). At the
optimum :math:`T` is an OT map from P to Q. WIN (wbar) runs one NOT per marginal; neural-ot builds
its weak costs and general cost functionals on the same two losses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["map_loss", "not_round", "potential_loss", "quadratic_cost"]


def quadratic_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r""":math:`\tfrac12\|x - y\|^2` per sample (all non-batch dimensions summed)."""
    return 0.5 * (x - y).flatten(1).pow(2).sum(1)


def map_loss(
    x: torch.Tensor, tx: torch.Tensor, potential: Callable, cost: Callable = quadratic_cost
) -> torch.Tensor:
    r""":math:`\mathbb{E}[c(x, T(x)) - f(T(x))]`, minimised by the map."""
    return (cost(x, tx) - potential(tx).reshape(len(tx))).mean()


def potential_loss(tx: torch.Tensor, y: torch.Tensor, potential: Callable) -> torch.Tensor:
    r""":math:`\mathbb{E} f(T(x)) - \mathbb{E} f(y)`, minimised by the potential (it maximises the dual)."""
    return potential(tx).mean() - potential(y).mean()


def not_round(
    trainer,
    map_name: str,
    potential_name: str,
    sample_x: Callable[[], torch.Tensor],
    sample_y: Callable[[], torch.Tensor],
    *,
    map_steps: int = 10,
    cost: Callable = quadratic_cost,
) -> dict[str, torch.Tensor]:
    """``map_steps`` updates of the map, then one of the potential, through a
    :class:`papercore.train.Trainer` holding both (fresh draws of P for every update)."""
    T, f = trainer.models[map_name], trainer.models[potential_name]
    f.requires_grad_(False)  # the map's updates need no potential gradients
    for _ in range(map_steps):
        x = sample_x()
        loss_t = trainer.optimize(map_name, map_loss(x, T(x), f, cost))
    f.requires_grad_(True)
    x = sample_x()
    with torch.no_grad():
        tx = T(x)
    loss_f = trainer.optimize(potential_name, potential_loss(tx, sample_y(), f))
    return {"map_loss": loss_t, "potential_loss": loss_f}
