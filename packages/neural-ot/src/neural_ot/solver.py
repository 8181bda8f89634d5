r"""The NOT/GNOT max-min solver on :class:`papercore.train.Trainer`.

Each step does ``map_steps`` updates of the map :math:`T` on

.. math:: \mathcal{L}_T = \hat F(\pi_T) - \frac{1}{nZ}\sum_{i, j} f(T(x_i, z_{ij}))

(:mod:`neural_ot.functionals`; for a strong cost this is :func:`papercore.ot.neural.map_loss`
averaged over z), then one update of the potential on
:func:`papercore.ot.neural.potential_loss`, :math:`\mathbb{E} f(T(x, z)) - \mathbb{E} f(y)`, with
``x`` drawn from all source data and ``y`` from all (unlabelled) target data.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from neural_ot.config import NOTConfig, NOTTrainConfig
from neural_ot.functionals import Batch, Functional, WeakQuadratic, parse_cost
from neural_ot.nets import build_map, build_potential
from neural_ot.transport import TransportMap
from papercore.ot.neural import potential_loss
from papercore.runtime import resolve_device
from papercore.train import Trainer

log = logging.getLogger(__name__)

__all__ = ["TransportData", "fit"]


def _array(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric [n, d] array: {e}") from None
    if arr.ndim != 2 or arr.shape[1] < 1 or len(arr) < 1:
        raise ValueError(f"{name} must be an [n, d] array of n >= 1 points, got shape {arr.shape} "
                         "(flatten images to [n, C*H*W] and pass image_shape)")  # fmt: skip
    bad = ~np.isfinite(arr).all(1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} row(s) with NaN or inf (first: row {int(np.argmax(bad))}): "
                         "clean or drop them")  # fmt: skip
    return arr


def _labels(a, n: int, name: str, of: str) -> np.ndarray:
    arr = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} has shape {arr.shape} but {of} has {n} samples: give one label per sample")
    if (
        not np.issubdtype(arr.dtype, np.number)
        or not np.isfinite(arr.astype(np.float64)).all()
        or (arr != np.round(arr)).any()
    ):
        raise ValueError(f"{name} must be integers (class ids; -1 = unlabelled for targets)")
    return arr.astype(np.int64)


class TransportData:
    """Source and target samples with the side data a functional needs, checked, on a device.

    ``source_labels``: a class per source row; ``target_labels``: a class per target row, ``-1`` for
    unlabelled rows (class-guided: every source class needs at least one labelled target);
    ``pairs``: source row i is paired with target row i (pair-guided; equal lengths).
    """

    def __init__(self, source, target, source_labels=None, target_labels=None, *, functional: Functional,
                 device="cpu", class_size: int = 8):  # fmt: skip
        xs, ys = _array(source, "source"), _array(target, "target")
        if xs.shape[1] != ys.shape[1]:
            raise ValueError(f"source has {xs.shape[1]} features but target has {ys.shape[1]}: "
                             "both must live in the same space")  # fmt: skip
        self.dim, self.class_size, self.device = xs.shape[1], class_size, torch.device(device)
        self.x, self.y = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        self.lx = self.ly = None
        if functional.needs_labels:
            if source_labels is None or target_labels is None:
                raise ValueError(f"the {functional.name} cost needs source labels and target labels "
                                 "(-1 = unlabelled; CLI: --source-labels, --target-labels)")  # fmt: skip
            lx = _labels(source_labels, len(xs), "source labels", "source")
            ly = _labels(target_labels, len(ys), "target labels", "target")
            if (lx < 0).any():
                raise ValueError(
                    f"source labels must be >= 0 (row {int(np.argmax(lx < 0))} is {lx[lx < 0][0]})"
                )
            missing = sorted(set(lx.tolist()) - set(ly[ly >= 0].tolist()))
            if missing:
                raise ValueError(f"class(es) {missing} have source samples but no labelled target sample: "
                                 "label at least one target of each class")  # fmt: skip
            self.lx = torch.from_numpy(lx).to(device)
            keep = ly >= 0
            self.yl, self.ly = (
                self.y[torch.from_numpy(keep).to(device)],
                torch.from_numpy(ly[keep]).to(device),
            )
            self.classes = torch.unique(self.lx)
            self.src_idx, self.src_n = _padded([torch.nonzero(self.lx == k)[:, 0] for k in self.classes])
            self.tgt_idx, self.tgt_n = _padded([torch.nonzero(self.ly == k)[:, 0] for k in self.classes])
        elif functional.needs_pairs and len(xs) != len(ys):
            raise ValueError(f"pair-guided transport pairs source row i with target row i: source has {len(xs)} "
                             f"rows, target {len(ys)}")  # fmt: skip

    def _pick(self, idx: torch.Tensor, counts: torch.Tensor, chosen: torch.Tensor, g) -> torch.Tensor:
        """``class_size`` random members of each chosen class, in per-class blocks."""
        u = torch.rand(len(chosen), self.class_size, generator=g).to(idx.device)
        j = (u * counts[chosen][:, None]).long()
        return idx[chosen[:, None], j].reshape(-1)

    def draw(self, n: int, g: torch.Generator, functional: Functional) -> dict[str, Any]:
        """One map update's source batch and side data (class-guided: ``n // class_size`` classes)."""
        if functional.needs_labels:
            k = max(1, min(len(self.classes), n // self.class_size))
            chosen = torch.randperm(len(self.classes), generator=g)[:k].to(self.device)
            xi = self._pick(self.src_idx, self.src_n, chosen, g)
            yi = self._pick(self.tgt_idx, self.tgt_n, chosen, g)
            return {"x": self.x[xi], "labels": self.lx[xi], "y": self.yl[yi], "y_labels": self.ly[yi]}
        i = torch.randint(0, len(self.x), (n,), generator=g).to(self.device)
        if functional.needs_pairs:
            return {"x": self.x[i], "y": self.y[i]}
        return {"x": self.x[i]}

    def source(self, n: int, g) -> torch.Tensor:
        return self.x[torch.randint(0, len(self.x), (n,), generator=g).to(self.device)]

    def target(self, n: int, g) -> torch.Tensor:
        return self.y[torch.randint(0, len(self.y), (n,), generator=g).to(self.device)]


def _padded(groups: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Index lists as a padded ``[K, max_len]`` matrix and their lengths."""
    counts = torch.tensor([len(g) for g in groups], device=groups[0].device)
    out = torch.zeros(len(groups), int(counts.max()), dtype=torch.long, device=groups[0].device)
    for i, grp in enumerate(groups):
        out[i, : len(grp)] = grp
    return out, counts


def fit(
    source,
    target,
    cost: str | Callable | Functional = "quadratic",
    config: NOTConfig | None = None,
    train: NOTTrainConfig | None = None,
    *,
    source_labels=None,
    target_labels=None,
    image_shape: tuple[int, int, int] | None = None,
    class_size: int = 8,
    val_fn: Callable[[TransportMap], dict[str, float]] | None = None,
    monitor: str | None = None,
    mode: str = "min",
    out: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    device: str | torch.device = "auto",
    plot: bool = True,
) -> TransportMap:
    """Fit a (stochastic) transport map from ``source`` to ``target`` (``[n, d]`` arrays) for ``cost``.

    ``cost``: ``"quadratic"``, ``"weak:GAMMA"``, ``"class-guided"``, ``"pair-guided[:LOSS]"``, a torch
    function ``c(x, y) -> [m]`` (a strong cost), or a :class:`~neural_ot.functionals.Functional`.
    ``val_fn(map) -> metrics`` runs every ``train.eval_every`` steps (logged to metrics.jsonl); with
    ``monitor`` the best validation weights are kept (use a validation split, never the test data).
    The result is otherwise the final iterate (a fixed budget).
    """
    cfg, tcfg = config or NOTConfig(), train or NOTTrainConfig()
    functional = parse_cost(cost)
    dev = resolve_device(device)
    data = TransportData(source, target, source_labels, target_labels, functional=functional, device=dev,
                         class_size=class_size)  # fmt: skip
    dim, B, Z = data.dim, tcfg.batch_size, cfg.z_size
    if isinstance(functional, WeakQuadratic) and functional.gamma > 0 and Z < 2:
        raise ValueError(
            "the weak cost with gamma > 0 needs z_size >= 2 noise draws per point (and z_dim >= 1)"
        )
    if image_shape is not None and math.prod(image_shape) != dim:
        raise ValueError(
            f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} values, the data {dim}"
        )
    torch.manual_seed(seed)
    T = build_map(cfg.map_net, dim, cfg.z_dim, cfg.width, cfg.depth, image_shape, cfg.identity_init)
    f = build_potential(cfg.potential_net, dim, cfg.width, cfg.depth, image_shape)
    opts = {
        "map": torch.optim.Adam(T.parameters(), lr=cfg.lr_map, weight_decay=cfg.weight_decay),
        "potential": torch.optim.Adam(f.parameters(), lr=cfg.lr_potential, weight_decay=cfg.weight_decay),
    }
    functional.to(dev)
    trainer = Trainer({"map": T, "potential": f}, opts, tcfg, out=out, seed=seed, resume=resume, device=dev)
    Tm, fm = trainer.models["map"], trainer.models["potential"]

    def noise(n, g):
        return cfg.z_std * torch.randn(n, cfg.z_dim, generator=g).to(dev) if cfg.z_dim else None

    def step(t: Trainer, _):
        g = t.generator  # seeded by (seed, step): a resumed run draws the same data
        if g.device.type != "cpu":
            g = torch.Generator().manual_seed(t.seed * 1_000_003 + t.step)
        ramp = min(1.0, (t.step + 1) / cfg.gamma_ramp) if cfg.gamma_ramp else 1.0
        fm.requires_grad_(False)
        for _ in range(cfg.map_steps):
            b = data.draw(B, g, functional)
            x = b.pop("x")
            xr = x.repeat_interleave(Z, 0)
            tx = Tm(xr, noise(len(xr), g))
            F = functional(Batch(x, tx.reshape(len(x), Z, dim), step=t.step, ramp=ramp, **b))
            loss_t = t.optimize("map", F - fm(tx).mean())
        fm.requires_grad_(True)
        x = data.source(B, g)
        with torch.no_grad():
            tx = Tm(x, noise(len(x), g))
        loss_f = t.optimize("potential", potential_loss(tx, data.target(B, g), fm))
        return {"map_loss": loss_t, "potential_loss": loss_f, "cost": F.detach()}

    def make_map() -> TransportMap:
        return TransportMap(trainer.unwrap("map"), cfg, dim, image_shape, functional.describe())

    val = None
    if val_fn is not None:

        def val(t: Trainer) -> dict[str, float]:
            m = make_map()
            metrics = val_fn(m)
            m.net.train()
            return metrics

    if val is not None and monitor is None:
        result = _fit_logging(trainer, step, val, plot)
    else:
        result = trainer.fit(step, None, val_fn=val, monitor=monitor or "loss", mode=mode, desc="neural-ot",
                             plot=plot)  # fmt: skip
    tmap = make_map()
    train_records = [r for r in result.history if r.get("split") == "train"]
    tmap.info.update({"steps": result.step, "seconds": round(result.seconds, 2), "seed": seed,
                      "first_record": train_records[0] if train_records else {},
                      "last_record": train_records[-1] if train_records else {}})  # fmt: skip
    if out is not None:
        tmap.save(out)
    return tmap


def _fit_logging(trainer: Trainer, step, val, plot: bool):
    """Validation metrics logged without selecting weights (no ``monitor``)."""

    def val_logged(t):
        metrics = dict(val(t))
        metrics.setdefault("_none", 0.0)
        return metrics

    keep = trainer.config.keep_best
    trainer.config.keep_best = False
    try:
        return trainer.fit(step, None, val_fn=val_logged, monitor="_none", desc="neural-ot", plot=plot)
    finally:
        trainer.config.keep_best = keep
