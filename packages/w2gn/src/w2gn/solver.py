r"""Fitting W2GN (and the [MM] baseline) in the training loop of :mod:`papercore.train`.

The W2GN objective (Korotin et al., ICLR 2021) over two convex potentials, ψ (forward, P → Q) and
ψ̄ (conjugate, Q → P):

.. math::

    \min_{\psi, \bar\psi}\; \mathbb{E}_P\,\psi(x) - \mathbb{E}_Q\,\psi\big(\nabla\bar\psi(y)\big)
    + \lambda\Big(\mathbb{E}_Q\big\|\nabla\psi(\nabla\bar\psi(y)) - y\big\|^2
                 + \mathbb{E}_P\big\|\nabla\bar\psi(\nabla\psi(x)) - x\big\|^2\Big)

with :math:`\nabla\bar\psi(y)` detached in the second term, so ψ̄ learns only through the cycle
terms and there is no inner maximisation; the squared errors are means over coordinates (so the
benchmark's λ = D weighs a full squared norm). Both potentials are projected to convexity after
every step. The dual gives the estimate

.. math::

    W_2^2(P, Q) \approx \mathbb{E}\|x\|^2 + \mathbb{E}\|y\|^2
      - 2\Big(\mathbb{E}_P\,\psi(x) + \mathbb{E}_Q\big[\langle \nabla\bar\psi(y), y\rangle - \psi(\nabla\bar\psi(y))\big]\Big).

The [MM] baseline (Makkuva et al.) instead fits ψ̄ by ``mm_inner_steps`` steps of
:math:`\min_{\bar\psi} \mathbb{E}_Q[\psi(\nabla\bar\psi(y)) - \langle\nabla\bar\psi(y), y\rangle]` per step of ψ
(ψ̄ unconstrained unless ``mm_convexify``, as in the benchmark's [MM] and [MMv2]).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from papercore.ot.icnn import DenseICNN, gradient, pretrain_identity
from papercore.ot.metrics import l2_uvp
from papercore.ot.samplers import TransportProblem, as_sampler
from papercore.runtime import resolve_device
from papercore.train import Trainer, TrainResult
from w2gn.config import W2GNConfig, W2GNTrainConfig
from w2gn.map import W2Map

log = logging.getLogger(__name__)

__all__ = ["fit"]

VALIDATION_SEED = 7_000_003  # validation draws never share a generator with training or tests


def _potential(dim: int, cfg: W2GNConfig, seed: int) -> DenseICNN:
    torch.manual_seed(seed)
    return DenseICNN(dim, cfg.hidden_for(dim), cfg.rank, cfg.activation, cfg.strong_convexity, cfg.init_std)


def fit(
    source: Any,
    target: Any,
    config: W2GNConfig | None = None,
    train: W2GNTrainConfig | None = None,
    *,
    problem: TransportProblem | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    device: str | torch.device = "auto",
) -> W2Map:
    r"""Fit the OT map from ``source`` (P) to ``target`` (Q) and return it as a :class:`W2Map`.

    Parameters
    ----------
    source, target : Sampler or array
        Samplers (:mod:`papercore.ot.samplers`) or ``[n, d]`` arrays (sampled uniformly with
        replacement each step).
    config, train : W2GNConfig, W2GNTrainConfig
        The method and its budget; the result is the final iterate (a fixed budget), or the best
        on validation draws when ``train.eval_every > 0``.
    problem : TransportProblem, optional
        The ground truth, when known: validation then reports L2-UVP on validation draws.
    out : path, optional
        Checkpoints, ``metrics.jsonl``, ``curves.png`` and the fitted map (``map.json``,
        ``*.safetensors``); with ``resume=True`` an interrupted fit continues.

    Examples
    --------
    >>> import torch
    >>> from papercore.ot.samplers import gaussian_problem
    >>> from w2gn import W2GNConfig, W2GNTrainConfig, fit
    >>> prob = gaussian_problem(2, seed=0)
    >>> T = fit(prob.P, prob.Q, W2GNConfig(pretrain_steps=100), W2GNTrainConfig(steps=50, batch_size=128), device="cpu")
    >>> T.forward(torch.zeros(1, 2)).shape
    torch.Size([1, 2])
    """
    cfg = config or W2GNConfig()
    tcfg = train or W2GNTrainConfig()
    dev = resolve_device(device)
    P = as_sampler(source, "source", tcfg.batch_size).to(dev)
    Q = as_sampler(target, "target", tcfg.batch_size).to(dev)
    if P.dim != Q.dim:
        raise ValueError(
            f"source and target live in different dimensions ({P.dim} and {Q.dim}): a map needs one D"
        )
    if cfg.reversed:
        P, Q = Q, P
    dim = P.dim
    psi, conj = _potential(dim, cfg, seed), _potential(dim, cfg, seed + 1)
    psi.to(dev)
    conj.to(dev)
    ckpt = out is not None and resume and os.path.isdir(os.path.join(out, "checkpoint"))
    if cfg.pretrain_steps and not ckpt:
        g = torch.Generator(device=dev).manual_seed(seed + 2)
        mse = pretrain_identity(psi, dim, steps=cfg.pretrain_steps, batch_size=min(tcfg.batch_size, 1024),
                                lr=cfg.lr, scale=cfg.pretrain_scale, generator=g)  # fmt: skip
        log.info("identity pretraining: final MSE %.2e", mse)
        conj.load_state_dict(psi.state_dict())
    fused = dev.type == "cuda"  # one kernel per optimizer step instead of one per tensor
    opts = {
        "forward": torch.optim.Adam(psi.parameters(), lr=cfg.lr, betas=cfg.betas, fused=fused),
        "conjugate": torch.optim.Adam(conj.parameters(), lr=cfg.lr, betas=cfg.conjugate_betas, fused=fused),
    }
    trainer = Trainer(
        {"forward": psi, "conjugate": conj}, opts, tcfg, out=out, seed=seed, resume=resume, device=dev
    )
    lam = cfg.lambda_for(dim)
    B = tcfg.batch_size

    grad = (
        (lambda net, z: net.grad(z)) if cfg.gradient == "closed_form" else (lambda net, z: gradient(net, z))
    )

    def w2gn_loss(x, y):
        y_inv = grad(conj, y)
        x_fwd = grad(psi, x)
        psi_x, psi_y_inv = psi(x).mean(), psi(y_inv.detach()).mean()
        cycle = ((grad(psi, y_inv) - y) ** 2).mean() + ((grad(conj, x_fwd) - x) ** 2).mean()
        # the dual W2^2 estimate from the same values (no extra forward pass)
        w2 = (
            (x * x).sum(1).mean()
            + (y * y).sum(1).mean()
            - 2 * (psi_x + (y_inv * y).sum(1).mean() - psi_y_inv)
        )
        return psi_x - psi_y_inv + lam * cycle, cycle.detach(), w2.detach()

    loss_fn = torch.compile(w2gn_loss) if cfg.compile else w2gn_loss

    def w2gn_step(t: Trainer, _):
        x, y = P.sample(B, t.generator), Q.sample(B, t.generator)
        loss, cycle, w2 = loss_fn(x, y)
        loss = t.optimize(("forward", "conjugate"), loss)
        psi.convexify()
        conj.convexify()
        return {"loss": loss, "cycle": cycle, "w2": w2}

    def mm_step(t: Trainer, _):
        x, y = P.sample(B, t.generator), Q.sample(B, t.generator)
        with torch.no_grad():
            y_inv = conj.grad(y)
        t.optimize("forward", psi(x).mean() - psi(y_inv).mean())
        psi.convexify()
        psi.requires_grad_(False)
        for _ in range(cfg.mm_inner_steps):
            y2 = Q.sample(B, t.generator)
            yp = grad(conj, y2)
            t.optimize("conjugate", (psi(yp) - (yp * y2).sum(1)).mean())
            if cfg.mm_convexify:
                conj.convexify()
        psi.requires_grad_(True)
        return {"w2": _dual_w2(psi, x, y, y_inv)}

    val_fn = _validation(P, Q, psi, conj, problem, B, dev, cfg.reversed) if tcfg.eval_every else None
    monitor = "val_l2_uvp_fwd" if problem is not None else "val_cycle"
    result: TrainResult = trainer.fit(
        w2gn_step if cfg.solver == "w2gn" else mm_step,
        None,
        val_fn=val_fn,
        monitor=monitor,
        desc=f"{cfg.solver} D={dim}",
    )
    if cfg.reversed:
        psi, conj = conj, psi
        P, Q = Q, P
    info = {"steps": result.step, "seconds": round(result.seconds, 2), "stopped_early": result.stopped_early,
            "best_step": result.best_step, "seed": seed}  # fmt: skip
    with torch.no_grad():
        gen = torch.Generator(device=dev).manual_seed(VALIDATION_SEED + 1)
        x = P.sample(2**14, gen)
        info["w2"] = float(((psi.push(x) - x).double() ** 2).sum(1).mean())
    fitted = W2Map(psi, conj, cfg, info)
    if out is not None and trainer.is_main:
        fitted.save(out)
    return fitted


def _dual_w2(psi, x, y, y_inv) -> torch.Tensor:
    with torch.no_grad():
        conj_value = (y_inv * y).sum(1) - psi(y_inv)
        return (
            (x * x).sum(1).mean() + (y * y).sum(1).mean() - 2 * (psi(x).mean() + conj_value.mean())
        ).detach()


def _validation(P, Q, psi, conj, problem, batch, dev, reversed_):
    """Validation on draws of their own (never the test draws): cycle error, and L2-UVP when the truth is known."""
    gen = torch.Generator(device=dev).manual_seed(VALIDATION_SEED)
    xv, yv = P.sample(4 * batch, gen), Q.sample(4 * batch, gen)
    truth = None
    if problem is not None:  # pairs of the original direction: x ~ P and T*(x)
        truth = problem.sample_pairs(4 * batch, torch.Generator(device=dev).manual_seed(VALIDATION_SEED + 2))

    def val_fn(t: Trainer) -> dict[str, float]:
        with torch.no_grad():
            cyc = ((psi.push(conj.push(yv)) - yv) ** 2).mean() + ((conj.push(psi.push(xv)) - xv) ** 2).mean()
            metrics = {"val_cycle": float(cyc)}
            if truth is not None:
                xs, ys = truth
                fwd, inv = (psi, conj) if not reversed_ else (conj, psi)
                metrics["val_l2_uvp_fwd"] = l2_uvp(fwd.push(xs), ys, problem.var_Q)
                if problem.var_P:
                    metrics["val_l2_uvp_inv"] = l2_uvp(inv.push(ys), xs, problem.var_P)
        return metrics

    return val_fn
