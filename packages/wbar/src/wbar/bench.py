"""Ground-truth suites for barycentre solvers: WIN and the baselines side by side, one row per run.

* ``location-scatter``: BW2-UVP (%) of WIN's generator (the last check and the median of the last
  five), of the Gaussian barycentre of 1,024-sample moments (POT) and, in 2-D, of POT's free-support
  barycentre on 500 points;
* ``nongaussian``: sample W2² (POT ``emd2``, n = 2,000) to the true barycentre for WIN, the free
  support and Bures baselines and the noise floor (two independent draws of the truth), and the L2-UVP
  of WIN's inverse maps (Algorithm 2) against the exact ones;
* ``ave-synth``: see :mod:`wbar.synth` (images; GPU-sized).
"""

from __future__ import annotations

import statistics
import time

import torch

from papercore.ot.metrics import bw2_uvp, l2_uvp, sample_w2, total_variance
from wbar.baselines import bures_from_samples, free_support
from wbar.config import WINConfig, WINTrainConfig
from wbar.solver import fit
from wbar.suites import location_scatter, nongaussian

SUITES = ("location-scatter", "nongaussian", "ave-synth")
TEST_SEED = 31337


def run(
    suite, dims, bases, seeds, cfg: WINConfig, train: WINTrainConfig, *, device="cpu", first_seed: int = 0
) -> list[dict]:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        if suite == "location-scatter":
            for dim in dims:
                for base in bases:
                    rows.append(_location_scatter(dim, base, seed, cfg, train, device))
        elif suite == "nongaussian":
            rows.append(_nongaussian(seed, cfg, train, device))
        else:
            from wbar.synth import bench_ave_synth

            rows.append(bench_ave_synth(seed, cfg, train, device))
    return rows


def _location_scatter(dim, base, seed, cfg, train, device) -> dict:
    prob = location_scatter(dim, 3, base, seed=seed, device=device)
    t0 = time.perf_counter()
    bar = fit(prob.marginals, prob.weights, cfg, train, problem=prob, seed=seed, device=device)
    row = {"suite": "location-scatter", "base": base, "dim": dim, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
           "win_bw2_uvp": bar.info.get("bw2_uvp_last"), "win_bw2_uvp_median5": bar.info.get("bw2_uvp_median_last5"),
           "bures_1024_bw2_uvp": bw2_uvp(bures_from_samples(prob.marginals, prob.weights, 1024, 32768, seed), prob.mean, prob.cov)}  # fmt: skip
    if dim == 2:
        row["free_support_500_bw2_uvp"] = bw2_uvp(
            free_support(prob.marginals, prob.weights, 500, seed), prob.mean, prob.cov
        )
    return row


def _nongaussian(seed, cfg, train, device) -> dict:
    prob = nongaussian(seed, device=device)
    cfg = cfg.replace(inverse_maps=True)
    t0 = time.perf_counter()
    bar = fit(prob.marginals, prob.weights, cfg, train, problem=prob, seed=seed, device=device)
    g = torch.Generator(device=device).manual_seed(TEST_SEED)
    n = 2000
    truth, truth2 = prob.truth.sample(n, g), prob.truth.sample(n, g)
    row = {"suite": "nongaussian", "dim": prob.dim, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
           "noise_floor_w2": sample_w2(truth2, truth), "win_w2": sample_w2(bar.sample(n, g), truth),
           "free_support_500_w2": sample_w2(free_support(prob.marginals, prob.weights, 500, seed), truth),
           "bures_w2": sample_w2(bures_from_samples(prob.marginals, prob.weights, 4096, n, seed), truth)}  # fmt: skip
    row["win_w2_over_floor"] = row["win_w2"] / row["noise_floor_w2"]
    y, xs = prob.extra["joint"](4096, g)
    var = total_variance(y)
    for k, x in enumerate(xs):
        row[f"inverse{k}_l2_uvp"] = l2_uvp(bar.inverse_maps[k](x), y, var)
        row[f"map{k}_l2_uvp"] = l2_uvp(bar.maps[k](y), x, total_variance(x))
    return row


def table(rows: list[dict]) -> str:
    """Mean ± std over seeds of every numeric column, per (suite, dim, base)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["suite"], r.get("dim"), r.get("base", "")), []).append(r)
    lines = ["| suite | D | base | metric | mean ± std | seeds |", "|---|---|---|---|---|---|"]
    for (suite, dim, base), rs in groups.items():
        keys = [
            k
            for k in rs[0]
            if k not in ("suite", "dim", "base", "seed") and isinstance(rs[0][k], int | float)
        ]
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if not vals:
                continue
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            lines.append(
                f"| {suite} | {dim} | {base} | {k} | {statistics.fmean(vals):.4g} ± {std:.2g} | {len(vals)} |"
            )
    return "\n".join(lines)
