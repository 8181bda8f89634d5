"""Benchmark suites (``neural-ot bench --suite ...``): each fits with a fixed budget per seed and
measures against the baselines on the same data, in the same run.

* ``grid``: the 4×4 Gaussian grid with permuted target classes, class-guided GNOT (10 labels per
  class) against POT ``emd`` with quadratic cost; class accuracy;
* ``gaussians``: D = 8 random Gaussians, quadratic-cost NOT; L2-UVP against the closed-form (Bures)
  map, beside the Bures map of 1,000-sample moments and POT ``emd``'s barycentric projection;
* ``digits``: scikit-learn digits → permuted glyphs, 10 labels per class: class-guided GNOT against
  quadratic-cost NOT and POT ``emd``; accuracy (a glyph classifier, averaged over z), FD-pixel and
  FD in that classifier's features;
* ``pairs``: pair-guided transport from degraded to clean glyphs: the loss curve and FD-pixel
  against the identity map.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from neural_ot import data as D
from neural_ot import evaluate as E
from neural_ot.config import NOTConfig, NOTTrainConfig
from neural_ot.solver import fit

__all__ = ["SUITES", "run", "summarize", "table"]

SUITES = ("grid", "gaussians", "digits", "pairs")

# The budgets of the acceptance checks (README): one place, used by the CLI, the benchmarks and the tests.
GRID = (
    NOTConfig(width=128, lr_map=1e-3, lr_potential=1e-3),
    NOTTrainConfig(steps=500, batch_size=64, checkpoint_every=0),
)
GAUSS = (
    NOTConfig(width=128, lr_map=1e-3, lr_potential=1e-3),
    NOTTrainConfig(steps=1000, batch_size=128, checkpoint_every=0),
)
DIGITS = (
    NOTConfig(width=256, lr_map=1e-3, lr_potential=1e-3),
    NOTTrainConfig(steps=1000, batch_size=80, checkpoint_every=0),
)
DIGITS_CLASS_SIZE = 8  # per map update: 10 classes x 8 source images, and 8 labelled-target draws per class
PAIRS = (
    NOTConfig(width=256, lr_map=1e-3, lr_potential=1e-3),
    NOTTrainConfig(steps=300, batch_size=64, checkpoint_every=0, log_every=10),
)


def _budget(default, steps: int | None, device):
    cfg, tcfg = default
    return cfg, replace(tcfg, steps=steps or tcfg.steps)


def grid(seed: int, steps: int | None = None, device="cpu", labelled: int = 10) -> dict[str, Any]:
    """Class-guided GNOT vs POT emd on the permuted 4×4 grid."""
    p = D.gaussian_grid(n=4096, seed=seed)
    lt = D.labelled_subset(p.target_labels, labelled, seed=seed)
    cfg, tcfg = _budget(GRID, steps, device)
    t0 = time.perf_counter()
    m = fit(p.source, p.target, "class-guided", cfg, tcfg, source_labels=p.source_labels, target_labels=lt,
            class_size=4, seed=seed, device=device, plot=False)  # fmt: skip
    secs = time.perf_counter() - t0
    test = D.gaussian_grid(n=1000, seed=seed + 10_000)  # fresh source points, same grid
    x, lx = test.source, test.source_labels
    acc = E.transfer_accuracy(m, x, lx, p.perm, D.grid_classify)
    plan = E.emd_plan(x, p.target[:1000])
    emd = E.plan_accuracy(plan, lx, p.perm, D.grid_classify(p.target[:1000]))
    return {"suite": "grid", "seed": seed, "steps": tcfg.steps, "gnot_accuracy": acc, "emd_accuracy": emd,
            "seconds": round(secs, 1)}  # fmt: skip


def gaussians(seed: int, steps: int | None = None, device="cpu", dim: int = 8) -> dict[str, Any]:
    """Quadratic-cost NOT on D-dimensional Gaussians: L2-UVP (%) against the closed-form map."""
    from papercore.ot import gaussian_problem
    from papercore.ot.gaussian import bures_map
    from papercore.ot.metrics import l2_uvp

    prob = gaussian_problem(dim, seed=seed)
    g = torch.Generator().manual_seed(seed)
    xs, ys = prob.P.sample(20_000, g), prob.Q.sample(20_000, g)
    cfg, tcfg = _budget(GAUSS, steps, device)
    t0 = time.perf_counter()
    m = fit(xs, ys, "quadratic", cfg, tcfg, seed=seed, device=device, plot=False)
    secs = time.perf_counter() - t0
    x, tx = prob.sample_pairs(4000, torch.Generator().manual_seed(seed + 10_000))
    uvp = l2_uvp(m.transport(x), tx, prob.var_Q)
    # baselines: the Bures map of 1,000-sample moments; POT emd's barycentric projection of 1,000 points
    xa, ya = xs[:1000].double(), ys[:1000].double()
    A, b = bures_map(xa.mean(0), torch.cov(xa.T), ya.mean(0), torch.cov(ya.T))
    uvp_bures = l2_uvp((x.double() @ A.T + b).float(), tx, prob.var_Q)
    plan = E.emd_plan(x[:1000], ys[:1000])
    bary = torch.from_numpy(plan @ ys[:1000].double().numpy() * 1000).float()
    uvp_emd = l2_uvp(bary, tx[:1000], prob.var_Q)
    return {"suite": "gaussians", "seed": seed, "dim": dim, "steps": tcfg.steps, "not_l2_uvp": uvp,
            "bures_1000_l2_uvp": uvp_bures, "emd_1000_l2_uvp": uvp_emd, "seconds": round(secs, 1)}  # fmt: skip


def digit_problem(seed: int, size: int = 8, labelled: int = 10, device="cpu", source: str = "digits"):
    """The digits → permuted glyphs split, its 10-label subset and the glyph classifier (trained on
    separately rendered glyphs with all labels)."""
    p = D.digits_to_glyphs(size=size, seed=seed, source=source)
    lt = D.labelled_subset(p.target_labels, labelled, seed=seed)
    xb, lb = D.glyphs(4000, size, seed=50_000 + seed)
    clf = E.train_classifier(xb, lb, p.image_shape, seed=seed, device=device)
    return p, lt, clf


def digits(seed: int, steps: int | None = None, device="cpu", size: int = 8, map_net: str | None = None,
           labelled: int = 10, source: str = "digits") -> dict[str, Any]:  # fmt: skip
    """Class-guided GNOT vs quadratic NOT vs POT emd, digits → permuted glyphs."""
    p, lt, clf = digit_problem(seed, size, labelled, device, source)
    cfg, tcfg = _budget(DIGITS, steps, device)
    if map_net:  # a UNet map comes with the convolutional ResNet potential, as in the reference
        cfg = replace(
            cfg, map_net=map_net, potential_net="resnet" if map_net == "unet" else cfg.potential_net
        )
    te, tl = p.extra["test"], p.extra["test_labels"]
    held = D.glyphs(len(te), size, seed=60_000 + seed)[0]  # fresh target images for the FDs
    row: dict[str, Any] = {"suite": "digits", "source": source, "seed": seed, "size": size, "steps": tcfg.steps, "labelled": labelled, "map_net": cfg.map_net,
                           "classifier_accuracy": float((clf.predict(D.glyphs(1000, size, seed=70_000 + seed)[0])
                                                         == D.glyphs(1000, size, seed=70_000 + seed)[1]).mean())}  # fmt: skip
    predict = clf.predict
    for name, cost in (("gnot", "class-guided"), ("not_quadratic", "quadratic")):
        t0 = time.perf_counter()
        m = fit(p.source, p.target, cost, cfg, tcfg, source_labels=p.source_labels, target_labels=lt,
                image_shape=p.image_shape, class_size=DIGITS_CLASS_SIZE, seed=seed, device=device, plot=False)  # fmt: skip
        row[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
        row[f"{name}_accuracy"] = E.transfer_accuracy(m, te, tl, p.perm, predict)
        out = m.transport(te)
        row[f"{name}_fd_pixel"] = E.fd_pixel(out, held)
        row[f"{name}_fd_features"] = E.fd_features(out, held, clf)
    plan = E.emd_plan(te, p.target[: 2 * len(te)])
    row["emd_accuracy"] = E.plan_accuracy(plan, tl, p.perm, predict(p.target[: 2 * len(te)]))
    row["identity_fd_pixel"] = E.fd_pixel(te, held)
    return row


def degraded_pairs(n: int, size: int = 8, seed: int = 0, noise: float = 0.3):
    """Paired glyphs: (blurred + noisy, clean) rows; the pair-guided task is restoration."""
    import torch.nn.functional as F

    clean, _ = D.glyphs(n, size, seed=seed)
    t = torch.from_numpy(clean).reshape(-1, 1, size, size)
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    blur = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), k[None, None])
    rng = np.random.default_rng(seed + 1)
    src = blur.reshape(n, -1).numpy() + noise * rng.standard_normal((n, size * size)).astype(np.float32)
    return src.astype(np.float32), clean


def pairs(seed: int, steps: int | None = None, device="cpu", loss: str = "mse") -> dict[str, Any]:
    """Pair-guided restoration of degraded glyphs: first/last training loss, FD-pixel vs identity."""
    src, tgt = degraded_pairs(2000, seed=seed)
    te_src, te_tgt = degraded_pairs(1000, seed=seed + 10_000)
    cfg, tcfg = _budget(PAIRS, steps, device)
    t0 = time.perf_counter()
    m = fit(src, tgt, f"pair-guided:{loss}", cfg, tcfg, seed=seed, device=device, plot=False)
    secs = time.perf_counter() - t0
    return {"suite": "pairs", "seed": seed, "steps": tcfg.steps, "loss": loss,
            "cost_first": m.info["first_record"]["cost"], "cost_last": m.info["last_record"]["cost"],
            "fd_pixel": E.fd_pixel(m.transport(te_src), te_tgt), "identity_fd_pixel": E.fd_pixel(te_src, te_tgt),
            "seconds": round(secs, 1)}  # fmt: skip


RUNNERS = {"grid": grid, "gaussians": gaussians, "digits": digits, "pairs": pairs}


def run(
    suite: str, seeds: int = 3, first_seed: int = 0, steps: int | None = None, device="cpu", **kw
) -> list[dict]:
    if suite not in RUNNERS:
        raise ValueError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
    return [
        RUNNERS[suite](s, steps=steps, device=device, **kw) for s in range(first_seed, first_seed + seeds)
    ]


def summarize(rows: list[dict]) -> dict[str, str]:
    """``mean ± std`` over seeds of every numeric column."""
    keys = [k for k, v in rows[0].items() if isinstance(v, float) and k != "seed"]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out[k] = f"{statistics.mean(vals):.4g} ± {sd:.2g}"
    return out


def table(rows: list[dict]) -> str:
    s = summarize(rows)
    lines = [
        f"suite {rows[0]['suite']}, {len(rows)} seed(s), {rows[0]['steps']} steps",
        "| metric | mean ± std |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in s.items()]
    return "\n".join(lines)
