"""Per-level evaluation of generators against reference clouds (MMD, COV, 1-NNA, JSD from
:mod:`papercore.geometry.metrics`).

A single-resolution generator (l-GAN, the GMM, the oracle's real clouds) is scored at the lower
levels on nested random subsets of its clouds, exactly like the references.
"""

from __future__ import annotations

import torch

from laplatgan.data import pyramid
from papercore.geometry import METRICS, evaluate

SHORT = ("mmd", "cov", "1nna", "jsd")


def resolve_metrics(names, distances=("cd",)) -> list[str]:
    """Short names (``mmd, cov, 1nna, jsd``) or full ones (``mmd-cd``, ...) to :data:`METRICS` names."""
    out = []
    for n in names:
        n = n.strip().lower()
        if n in METRICS:
            out.append(n)
        elif n == "jsd":
            out.append("jsd")
        elif n in SHORT:
            out += [f"{n}-{d}" for d in distances]
        else:
            raise ValueError(f"unknown metric {n!r}: choose from {', '.join(SHORT)} or {', '.join(METRICS)}")
    return list(dict.fromkeys(out))


def per_level(
    samples, refs: torch.Tensor, levels, metrics, seed: int = 0, device="cpu", batch: int = 64
) -> dict[int, dict[str, float]]:
    """``{level: {metric: value}}``: ``samples`` is ``{level: clouds}`` or top-level clouds ``[S, N, 3]``."""
    ref = pyramid(refs, levels, seed)
    if isinstance(samples, torch.Tensor):
        samples = pyramid(samples, levels, seed + 1)
    # generated points outside the unit ball count in their nearest JSD cell, as in latent_3d_points
    return {
        n: evaluate(samples[n], ref[n], metrics, device=device, batch=batch, outside="nearest")
        for n in levels
    }


def table(results: dict[str, dict[int, dict[str, float]]], digits: int = 4) -> str:
    """A Markdown table: one row per (model, level)."""
    names = list(next(iter(next(iter(results.values())).values())).keys())
    lines = ["| model | points | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for model, levels in results.items():
        for n, vals in levels.items():
            lines.append(f"| {model} | {n} | " + " | ".join(f"{vals[k]:.{digits}g}" for k in names) + " |")
    return "\n".join(lines)
