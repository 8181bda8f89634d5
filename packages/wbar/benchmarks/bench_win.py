"""WIN against the baselines on the ground-truth suites; entries for docs/benchmarks/wbar.json.

Usage:
  python packages/wbar/benchmarks/bench_win.py --suite location-scatter --dims 2,4,8 --bases gaussian,uniform,swiss_roll --seeds 3
  python packages/wbar/benchmarks/bench_win.py --suite nongaussian --seeds 3
  python packages/wbar/benchmarks/bench_win.py --suite ave-synth --seeds 1 --steps 20 --device cuda

Fixed budgets (``--steps`` outer iterations); the final iterate is scored. Location-scatter reports
BW2-UVP (%): the median of the last five checks (the acceptance metric) with the Gaussian barycentre
of 1,024-sample moments (POT) as the baseline. Non-Gaussian reports sample W2² (POT emd2, n = 2,000)
over the noise floor of two draws of the truth, and the inverse maps' L2-UVP (%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from wbar import WINConfig, WINTrainConfig, bench


def _stat(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="location-scatter", choices=bench.SUITES)
    ap.add_argument("--dims", default="2")
    ap.add_argument("--bases", default="gaussian")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="outer iterations")
    ap.add_argument("--not-steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--time-limit", type=float, default=float("inf"), help="seconds; later dimensions are skipped"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("PAPERCORE_PROGRESS", "0")
    if args.device == "cpu":
        torch.set_num_threads(1)
    cfg = WINConfig(not_steps=args.not_steps, generator_steps=args.not_steps, inverse_steps=args.not_steps)
    train = WINTrainConfig(steps=args.steps, batch_size=args.batch, checkpoint_every=0)
    t0, rows = time.perf_counter(), []
    dims = [int(d) for d in args.dims.split(",")]
    for dim in dims:
        if time.perf_counter() - t0 > args.time_limit:
            print(f"time limit: D={dim} and above not run")
            break
        rows += bench.run(
            args.suite, [dim], args.bases.split(","), args.seeds, cfg, train, device=args.device
        )
        print(bench.table(rows), flush=True)
        if args.suite != "location-scatter":
            break
    entries, hw, cmd, day = [], hardware(), command_line(), today()
    budget = f"{args.steps} outer iterations x {args.not_steps} NOT rounds, batch {args.batch}"
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["suite"], r.get("dim"), r.get("base", "")), []).append(r)
    for (suite, dim, base), rs in groups.items():
        if suite == "location-scatter":
            m, s, n = _stat(rs, "win_bw2_uvp_median5")
            b, _, _ = _stat(rs, "bures_1024_bw2_uvp")
            entries.append(Entry(f"location-scatter {base} D={dim} K=3: WIN BW2-UVP median of last 5 ({n} seeds, std {s:.3g}; {budget})",
                                 "BW2-UVP %", round(m, 4), "Gaussian barycentre of 1024-sample moments (POT)", round(b, 4),
                                 round(m / b, 3), hw, day, cmd))  # fmt: skip
        elif suite == "nongaussian":
            ratio, s, n = _stat(rs, "win_w2_over_floor")
            fs = statistics.fmean(r["free_support_500_w2"] / r["noise_floor_w2"] for r in rs)
            entries.append(Entry(f"nongaussian 2-D: WIN sample W2^2 / noise floor ({n} seeds, std {s:.3g}; {budget})",
                                 "ratio to floor", round(ratio, 3), "POT free support (500 points)", round(fs, 3),
                                 round(ratio / fs, 3), hw, day, cmd))  # fmt: skip
            for k in (0, 1):
                m, s, n = _stat(rs, f"inverse{k}_l2_uvp")
                entries.append(Entry(f"nongaussian 2-D: inverse map {k} L2-UVP ({n} seeds, std {s:.3g})", "L2-UVP %",
                                     round(m, 3), "goal", 5.0, round(m / 5.0, 3), hw, day, cmd))  # fmt: skip
        else:
            m, s, n = _stat(rs, "fd_pixel_win")
            b, _, _ = _stat(rs, "fd_pixel_marginal1")
            entries.append(Entry(f"ave-synth 32px: FD-pixel of WIN samples to the clean images ({n} seeds, std {s:.3g})",
                                 "FD-pixel", round(m, 4), "marginal 2 images vs clean", round(b, 4), round(m / b, 3), hw, day, cmd))  # fmt: skip
    write_results(entries, args.json, f"wbar: {args.suite}")


if __name__ == "__main__":
    main()
