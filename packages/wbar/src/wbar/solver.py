r"""WIN (Korotin, Egiazarian, Li, Burnaev; NeurIPS 2022), Algorithms 1 and 2, in :mod:`papercore.train`.

The barycentre of :math:`P_1, \dots, P_K` with weights α is a fixed point of
:math:`H(Q) = \big(\sum_k \alpha_k T_{Q \to P_k}\big)\#Q` (Álvarez-Esteban et al.). WIN keeps
:math:`Q = G\#N(0, I)` and iterates: each outer iteration

1. fits a NOT map :math:`T_k: Q \to P_k` per marginal (quadratic cost; ``not_steps`` rounds of
   ``map_steps`` map updates and one potential update, :func:`papercore.ot.neural.not_round`);
2. freezes a copy :math:`G_{old}` and regresses :math:`G` for ``generator_steps`` steps onto
   :math:`\sum_k \alpha_k T_k(G_{old}(z))` (loss :math:`\tfrac12\|G(z) - \text{target}\|^2`);
3. with ``inverse_maps`` (Algorithm 2), fits NOT maps :math:`P_k \to Q` too.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from papercore.ot.gaussian import sqrtm_psd
from papercore.ot.metrics import bw2_uvp
from papercore.ot.neural import not_round
from papercore.ot.samplers import as_sampler
from papercore.runtime import resolve_device
from papercore.train import Trainer
from wbar.barycenter import Barycenter
from wbar.config import WINConfig, WINTrainConfig
from wbar.networks import build
from wbar.suites import BarycenterProblem

log = logging.getLogger(__name__)

__all__ = ["check_weights", "fit"]


def check_weights(weights: Sequence[float] | None, k: int, normalize: bool = False) -> tuple[float, ...]:
    """Barycentric weights: ``k`` non-negative numbers summing to 1 (or rescaled to, with ``normalize``)."""
    w = [1.0 / k] * k if weights is None else [float(a) for a in weights]
    if len(w) != k:
        raise ValueError(f"{len(w)} weights for {k} marginals: give one weight per marginal")
    bad = [a for a in w if not math.isfinite(a) or a < 0]
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    total = sum(w)
    if abs(total - 1) > 1e-6:
        if not normalize or total <= 0:
            raise ValueError(f"weights {w} sum to {total:g}, not 1: fix them or pass --normalize-weights")
        w = [a / total for a in w]
    return tuple(w)


def fit(
    marginals: Sequence[Any],
    weights: Sequence[float] | None = None,
    config: WINConfig | None = None,
    train: WINTrainConfig | None = None,
    *,
    problem: BarycenterProblem | None = None,
    image_shape: tuple[int, int, int] | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    device: str | torch.device = "auto",
) -> Barycenter:
    """Fit the W2 barycentre of ``marginals`` (samplers or ``[n, d]`` arrays) with ``weights``.

    ``problem`` (a :class:`~wbar.suites.BarycenterProblem` with known statistics) adds BW2-UVP to the
    evaluations (every ``train.eval_every`` outer iterations); ``image_shape`` is required for
    ``network="conv"``. The result is the final iterate (a fixed budget).
    """
    cfg, tcfg = config or WINConfig(), train or WINTrainConfig()
    dev = resolve_device(device)
    if not marginals:
        raise ValueError("no marginals given: pass at least one sampler or [n, d] array")
    Ps = [as_sampler(m, f"marginal {i}", tcfg.batch_size).to(dev) for i, m in enumerate(marginals)]
    dims = sorted({p.dim for p in Ps})
    if len(dims) > 1:
        raise ValueError(
            f"the marginals live in different dimensions ({', '.join(map(str, dims))}): a barycentre needs one D"
        )
    alpha = check_weights(weights, len(Ps))
    dim, K, B = dims[0], len(Ps), tcfg.batch_size
    if cfg.network == "conv" and (image_shape is None or math.prod(image_shape) != dim):
        raise ValueError(f"network=conv needs image_shape (C, H, W) with C*H*W = {dim}, got {image_shape}")
    z_dim = cfg.z_dim or (dim if cfg.network == "mlp" else 64)
    torch.manual_seed(seed)
    G, make_map, make_potential = build(cfg.network, dim, z_dim, cfg.width, cfg.depth, image_shape)
    models: dict[str, torch.nn.Module] = {"generator": G}
    for k in range(K):
        models[f"map{k}"], models[f"potential{k}"] = make_map(), make_potential()
        if cfg.inverse_maps:
            models[f"inverse{k}"], models[f"inverse_potential{k}"] = make_map(), make_potential()
    for m in models.values():
        m.to(dev)
    fresh = not (resume and out is not None and os.path.isdir(os.path.join(out, "checkpoint")))
    if fresh and cfg.pretrain_steps and cfg.network == "mlp" and cfg.init != "none":
        _pretrain(G, Ps, alpha, z_dim, dim, cfg.init, cfg.pretrain_steps, B, dev, seed)
    lrs = {"generator": cfg.lr_generator}
    lrs.update({n: cfg.lr_potential if "potential" in n else cfg.lr_map for n in models if n != "generator"})
    opts = {n: torch.optim.Adam(m.parameters(), lr=lrs[n]) for n, m in models.items()}
    trainer = Trainer(models, opts, tcfg, out=out, seed=seed, resume=resume, device=dev)

    def outer(t: Trainer, _):
        def z():
            return torch.randn(B, z_dim, device=dev, generator=t.generator)

        def bary():
            with torch.no_grad():
                return G(z())

        metrics: dict[str, torch.Tensor] = {}
        for k in range(K):
            for _ in range(cfg.not_steps):
                m = not_round(t, f"map{k}", f"potential{k}", bary, lambda k=k: Ps[k].sample(B, t.generator),
                              map_steps=cfg.map_steps)  # fmt: skip
            metrics[f"map{k}_loss"] = m["map_loss"]
        G_old = copy.deepcopy(G).requires_grad_(False)
        for _ in range(cfg.generator_steps):
            zz = z()
            with torch.no_grad():
                xo = G_old(zz)
                target = sum(a * t.models[f"map{k}"](xo) for k, a in enumerate(alpha))
            loss = t.optimize("generator", 0.5 * (G(zz) - target).pow(2).sum(1).mean())
        metrics["generator_loss"] = loss
        if cfg.inverse_maps:
            rounds = cfg.inverse_steps + (cfg.inverse_final_steps if t.step == tcfg.steps - 1 else 0)
            for k in range(K):
                for _ in range(rounds):
                    not_round(t, f"inverse{k}", f"inverse_potential{k}", lambda k=k: Ps[k].sample(B, t.generator), bary,
                              map_steps=cfg.map_steps)  # fmt: skip
        return metrics

    val_fn = None
    if problem is not None and problem.cov is not None and tcfg.eval_every:
        mean, cov = problem.mean.to(dev), problem.cov.to(dev)

        def val_fn(t: Trainer) -> dict[str, float]:
            g = torch.Generator(device=dev).manual_seed(777)
            with torch.no_grad():
                x = torch.cat([G(torch.randn(8192, z_dim, device=dev, generator=g)) for _ in range(4)])
            return {"bw2_uvp": bw2_uvp(x, mean, cov)}

    info: dict[str, Any] = {"seed": seed}
    if val_fn is not None and trainer.step == 0:
        info["bw2_uvp_init"] = val_fn(trainer)["bw2_uvp"]  # where the generator starts (after pretraining)
    result = trainer.fit(outer, None, val_fn=val_fn, monitor="bw2_uvp", desc=f"WIN K={K} D={dim}")
    info.update(steps=result.step, seconds=round(result.seconds, 2))
    checks = [r["bw2_uvp"] for r in result.history if r.get("split") == "val"]
    if checks:
        info["bw2_uvp_last"] = checks[-1]
        info["bw2_uvp_median_last5"] = statistics.median(checks[-5:])
    maps = [models[f"map{k}"] for k in range(K)]
    inv = [models[f"inverse{k}"] for k in range(K)] if cfg.inverse_maps else []
    fitted = Barycenter(G, maps, inv, alpha, cfg, dim, z_dim, image_shape, info)
    if out is not None and trainer.is_main:
        fitted.save(out)
    return fitted


def _pretrain(G, Ps, alpha, z_dim, dim, init, steps, batch, dev, seed) -> None:
    """Fit G(z) to its start: z itself (``identity``, padded or cut to ``dim``), or the Gaussian with the
    α-averaged mean and covariance of the marginals (``gaussian``), a linear map of z."""
    g = torch.Generator(device=dev).manual_seed(seed + 11)
    mean, root = torch.zeros(dim, device=dev), torch.eye(dim, device=dev)
    if init == "gaussian":
        stats = [p.moments(2**14, seed + i) for i, p in enumerate(Ps)]
        mean = sum(a * m for a, (m, _) in zip(alpha, stats)).float().to(dev)
        root = sqrtm_psd(sum(a * c for a, (_, c) in zip(alpha, stats))).float().to(dev)
    k = min(z_dim, dim)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    for _ in range(steps):
        zz = torch.randn(batch, z_dim, device=dev, generator=g)
        target = mean + zz[:, :k] @ root[:, :k].T
        loss = (G(zz) - target).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
