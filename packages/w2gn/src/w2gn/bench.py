"""The W2 benchmark harness: every solver and baseline scored on the same test draws.

Suites:

* ``gaussians``: two random Gaussians per seed (closed-form map; W2GN's table);
* ``mix3tomix10``: ICNN-potential pairs in the W2 benchmark's construction, either our own
  (:func:`papercore.ot.samplers.icnn_problem`, a new pair per seed) or the benchmark's published pairs
  (``pairs=`` their ``benchmarks/Mix3toMix10`` folder; the seed then varies the solver only).

Solvers: ``w2gn`` and ``mm`` (fitted with a fixed step budget; the final iterate is scored),
``bures`` (the linear map of the samples' moments), ``emd`` (POT's exact plan between 2,048 test
points and 2,048 draws of Q, barycentric projection, in-sample), and always ``identity`` and
``constant``. Scores: L2-UVP forward and inverse (%) and the forward cosine, on 4,096 test pairs drawn
with a generator no training or validation draw uses.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence

import torch

from papercore.ot.metrics import cos_similarity, l2_uvp
from papercore.ot.samplers import TransportProblem, gaussian_problem, icnn_problem, mix3tomix10
from w2gn.baselines import BuresMap, emd_map
from w2gn.config import W2GNConfig, W2GNTrainConfig
from w2gn.solver import fit

SUITES = ("gaussians", "mix3tomix10")
SOLVERS = ("w2gn", "mm", "bures", "emd")
TEST_SEED = 424242
EMD_POINTS = 2048


def problem(suite: str, dim: int, seed: int, pairs=None, device="cpu") -> TransportProblem:
    if suite == "gaussians":
        return gaussian_problem(dim, seed, device=device)
    if suite == "mix3tomix10":
        return mix3tomix10(dim, pairs, device=device) if pairs else icnn_problem(dim, seed, device=device)
    raise ValueError(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")


def score(prob: TransportProblem, forward, inverse=None, n: int = 4096) -> dict[str, float]:
    gen = torch.Generator(device=prob.P.device).manual_seed(TEST_SEED)
    x, y = prob.sample_pairs(n, gen)
    with torch.no_grad():
        fx = forward(x)
        row = {"l2_uvp_fwd": l2_uvp(fx, y, prob.var_Q), "cos_fwd": cos_similarity(x, fx, y)}
        if inverse is not None and prob.var_P:
            row["l2_uvp_inv"] = l2_uvp(inverse(y), x, prob.var_P)
    return row


def run(
    suite: str,
    dims: Sequence[int],
    solvers: Sequence[str],
    seeds: int,
    config: W2GNConfig,
    train: W2GNTrainConfig,
    *,
    pairs=None,
    device="cpu",
    first_seed: int = 0,
) -> list[dict]:
    """One row per (dimension, seed, solver), baselines included."""
    unknown = sorted(set(solvers) - set(SOLVERS))
    if unknown:
        raise ValueError(f"unknown solver(s) {', '.join(unknown)}: choose from {', '.join(SOLVERS)}")
    rows = []
    for dim in dims:
        for seed in range(first_seed, first_seed + seeds):
            prob = problem(suite, dim, seed, pairs, device)
            base = {"suite": suite, "dim": dim, "seed": seed, "pair": prob.name}
            mean_q = prob.Q.moments(2**14, seed)[0].float()
            rows.append({**base, "solver": "identity", **score(prob, lambda x: x, lambda y: y)})
            rows.append(
                {**base, "solver": "constant", **score(prob, lambda x, m=mean_q: m.expand_as(x).to(x))}
            )
            for solver in solvers:
                t0 = time.perf_counter()
                if solver in ("w2gn", "mm"):
                    cfg = dataclasses.replace(config, solver=solver)
                    T = fit(prob.P, prob.Q, cfg, train, seed=seed, device=device)
                    row = score(prob, T.forward, T.inverse)
                    row["steps"] = T.info["steps"]
                elif solver == "bures":
                    B = BuresMap(prob.P, prob.Q, seed=seed)
                    row = score(prob, B.forward, B.inverse)
                else:  # emd: in-sample on EMD_POINTS test points
                    gen = torch.Generator(device=prob.P.device).manual_seed(TEST_SEED + 1)
                    ys = prob.Q.sample(EMD_POINTS, gen)
                    row = score(prob, lambda x, ys=ys: emd_map(x, ys), n=EMD_POINTS)
                row["seconds"] = round(time.perf_counter() - t0, 2)
                rows.append({**base, "solver": solver, **row})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (suite, dimension, solver)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["suite"], r["dim"], r["solver"]), []).append(r)
    out = []
    for (suite, dim, solver), rs in groups.items():
        entry = {"suite": suite, "dim": dim, "solver": solver, "seeds": len(rs)}
        for key in ("l2_uvp_fwd", "l2_uvp_inv", "cos_fwd", "seconds"):
            vals = [r[key] for r in rs if key in r]
            if vals:
                entry[key] = statistics.fmean(vals)
                entry[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(entry)
    return out


def table(summary: list[dict]) -> str:
    """A Markdown table: one row per solver, one column per dimension, L2-UVP fwd mean ± std (%)."""
    dims = sorted({s["dim"] for s in summary})
    solvers = list(dict.fromkeys(s["solver"] for s in summary))
    lines = ["| solver | " + " | ".join(f"D={d}" for d in dims) + " |", "|---|" + "---|" * len(dims)]
    for solver in solvers:
        cells = []
        for d in dims:
            s = next((s for s in summary if s["dim"] == d and s["solver"] == solver), None)
            cells.append("" if s is None else f"{s['l2_uvp_fwd']:.2f} ± {s['l2_uvp_fwd_std']:.2f}")
        lines.append(f"| {solver} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
