"""Training speed of W2GN (steps per second) at the W2 benchmark's setting: D = 16, batch 1024.

Usage: python packages/w2gn/benchmarks/bench_speed.py [--device cuda] [--dim 16] [--batch 1024]
       [--steps 600] [--variants autograd,closed_form,compiled] [--json PATH]

Each variant runs the full training loop (papercore.train, sampling included) for --steps steps;
the rate is measured between the records after the first third of the steps (warm-up and
compilation excluded) and the end. The baseline is the reference implementation's approach, ∇ψ by
autograd with a double backward; the reference code reports 22 it/s at this setting on its GPU
(250k steps in 3 h 05). The goal on one GPU is >= 220 it/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.ot.samplers import icnn_problem
from w2gn import W2GNConfig, W2GNTrainConfig, fit

VARIANTS = {
    "autograd": dict(gradient="autograd"),
    "closed_form": dict(gradient="closed_form"),
    "compiled": dict(gradient="closed_form", compile=True),
}


def rate(args, variant: str) -> float:
    prob = icnn_problem(args.dim, seed=0, device=args.device)
    cfg = W2GNConfig(pretrain_steps=0, **VARIANTS[variant])
    train = W2GNTrainConfig(
        steps=args.steps, batch_size=args.batch, log_every=max(1, args.steps // 6), checkpoint_every=0
    )
    with tempfile.TemporaryDirectory() as out:
        fit(prob.P, prob.Q, cfg, train, out=out, device=args.device)
        recs = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    warm = next(r for r in recs if r["step"] >= args.steps // 3)
    last = recs[-1]
    return (last["step"] - warm["step"]) / (last["seconds"] - warm["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--variants", default="autograd,closed_form,compiled")
    ap.add_argument("--json", default=None, help="write the entries here (and a .md beside)")
    args = ap.parse_args()
    os.environ.setdefault("PAPERCORE_PROGRESS", "0")
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variant(s) {sorted(unknown)}: choose from {', '.join(VARIANTS)}")
    rates = {v: rate(args, v) for v in variants}
    base = rates.get("autograd")
    entries = []
    for v, r in rates.items():
        print(f"{v:<12} {r:8.1f} it/s  (D={args.dim}, batch {args.batch}, {args.device})")
        entries.append(Entry(f"w2gn step D={args.dim} B={args.batch} {v} ({args.device})", "it/s", round(r, 2),
                             "autograd double backward", round(base or float("nan"), 2),
                             round(r / base, 3) if base else float("nan"), hardware(), today(), command_line()))  # fmt: skip
    if args.json:
        write_results(entries, args.json, "w2gn training speed")


if __name__ == "__main__":
    main()
