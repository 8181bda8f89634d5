"""L2-UVP of W2GN, [MM] and the baselines on the W2GN Gaussians or the W2 benchmark's Mix3toMix10 pairs.

Usage:
  python packages/w2gn/benchmarks/bench_w2.py --suite gaussians --dims 2,4,8,16,32,64 --steps 5000 --seeds 3
  python packages/w2gn/benchmarks/bench_w2.py --suite mix3tomix10 --dims 2,4,8,16,32,64,128 \\
      --solvers w2gn,mm,bures,emd --seeds 3 [--pairs PATH/benchmarks/Mix3toMix10] --json docs/benchmarks/w2gn-mix.json

Every fit has a fixed step budget and the final iterate is scored on test draws no training draw
shares (never best-on-test). --pairs uses the benchmark's published potentials; without it each seed
builds a pair of our own in the benchmark's construction. --time-limit stops before a dimension
whose start would come after the limit (the rows already done are kept).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from w2gn import W2GNConfig, W2GNTrainConfig, bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="gaussians", choices=bench.SUITES)
    ap.add_argument("--dims", default="2,4,8")
    ap.add_argument("--solvers", default="w2gn,bures")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--widths", default="benchmark", choices=["benchmark", "w2gn"])
    ap.add_argument("--cycle-weight", type=float, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--pairs", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--time-limit", type=float, default=float("inf"), help="seconds")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("PAPERCORE_PROGRESS", "0")
    cfg = W2GNConfig(widths=args.widths, cycle_weight=args.cycle_weight, compile=args.compile)
    train = W2GNTrainConfig(steps=args.steps, batch_size=args.batch, checkpoint_every=0)
    t0, rows = time.perf_counter(), []
    for dim in (int(d) for d in args.dims.split(",")):
        if time.perf_counter() - t0 > args.time_limit:
            print(f"time limit reached: D={dim} and above not run")
            break
        rows += bench.run(args.suite, [dim], args.solvers.split(","), args.seeds, cfg, train, pairs=args.pairs,
                          device=args.device)  # fmt: skip
        print(bench.table(bench.summarize(rows)), flush=True)
    summary = bench.summarize(rows)
    base = {(s["dim"]): s for s in summary if s["solver"] == "bures"}
    entries = []
    for s in summary:
        b = base.get(s["dim"])
        name = f"{args.suite} D={s['dim']} {s['solver']} ({s['seeds']} seeds, std {s['l2_uvp_fwd_std']:.3g}; {args.steps} steps)"
        entries.append(Entry(name, "L2-UVP fwd %", round(s["l2_uvp_fwd"], 4), "bures (linear)",
                             round(b["l2_uvp_fwd"], 4) if b else float("nan"),
                             round(s["l2_uvp_fwd"] / b["l2_uvp_fwd"], 4) if b else float("nan"),
                             hardware(), today(), command_line()))  # fmt: skip
    write_results(entries, args.json, f"w2gn: {args.suite}")


if __name__ == "__main__":
    main()
