"""neural-ot benchmarks: each suite over seeds with its baselines, then docs/benchmarks/neural-ot.{json,md}.

Run a suite (several may run side by side as separate processes), then merge:

    python packages/neural-ot/benchmarks/bench_neural_ot.py --suite grid --seeds 3 --save /tmp/nr/grid.json
    python packages/neural-ot/benchmarks/bench_neural_ot.py --merge /tmp/nr/*.json --out docs/benchmarks/neural-ot.json

``--device cuda --suite digits --size 32 --map-net unet`` is the GPU run (32×32 glyphs, UNet maps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("PAPERCORE_PROGRESS", "0")

import torch  # noqa: E402

from neural_ot import bench  # noqa: E402
from papercore.bench import Entry, hardware, today, write_results  # noqa: E402

# metric -> (baseline metric, higher is better) for each suite's entries
PAIRS = {
    "grid": [("gnot_accuracy", "emd_accuracy", "POT emd (quadratic cost), plan mass to the right class")],
    "gaussians": [("not_l2_uvp", "bures_1000_l2_uvp", "Bures map of 1,000-sample moments"),
                  ("not_l2_uvp", "emd_1000_l2_uvp", "POT emd barycentric projection, 1,000 points")],
    "digits": [("gnot_accuracy", "not_quadratic_accuracy", "NOT, quadratic cost, same budget"),
               ("gnot_accuracy", "emd_accuracy", "POT emd (quadratic cost), plan mass to the right class"),
               ("gnot_fd_pixel", "identity_fd_pixel", "identity map (digits themselves)"),
               ("gnot_fd_features", "not_quadratic_fd_features", "NOT, quadratic cost")],
    "pairs": [("fd_pixel", "identity_fd_pixel", "identity map (degraded inputs)"),
              ("cost_last", "cost_first", "first logged training loss")],
}  # fmt: skip


def _ms(vals):
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def entries(result: dict) -> list[Entry]:
    rows, suite = result["rows"], result["suite"]
    hw = result["hardware"]
    out = []
    for metric, base, base_name in PAIRS[suite]:
        m, s = _ms([r[metric] for r in rows])
        bm, bs = _ms([r[base] for r in rows])
        tag = " ".join(
            str(x)
            for x in (suite, rows[0].get("source", ""), rows[0].get("size", ""), rows[0].get("map_net", ""))
            if x
        )
        out.append(Entry(
            name=f"neural-ot {tag}: {metric} (mean ± std {m:.4g} ± {s:.2g} over {len(rows)} seeds; baseline {bm:.4g} ± {bs:.2g}; "
                 f"{rows[0]['steps']} steps, {_ms([r.get('seconds', r.get('gnot_seconds', 0)) for r in rows])[0]:.0f} s per fit)",
            metric=metric, value=m, baseline=base_name, baseline_value=bm, ratio=m / bm if bm else float("nan"),
            hardware=hw, date=result["date"], command=result["command"]))  # fmt: skip
    return out


def _read(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=bench.SUITES)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--map-net", default="")
    ap.add_argument("--source-domain", default="digits", help="digits: digits or glyphs-b")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--json", help="also write this run's entries here (papercore.bench format; the GPU suite)"
    )
    ap.add_argument("--save", help="write this suite's rows here (JSON)")
    ap.add_argument("--merge", nargs="*", help="saved suite files to merge into --out")
    ap.add_argument("--out", help="docs/benchmarks/neural-ot.json (a .md is written next to it)")
    a = ap.parse_args(argv)
    if a.merge:
        results = [_read(f) for f in a.merge]
        write_results([e for r in results for e in entries(r)], a.out, "neural-ot benchmarks")
        if a.out:  # every suite's command, total time and per-seed rows below the table
            md = [f"\n## {r['suite']}\n\n`{r['command']}` ({r['total_seconds']:.0f} s in all, {r['hardware']})\n\n"
                  + "\n".join(f"- {json.dumps(row)}" for row in r["rows"]) for r in results]  # fmt: skip
            md_path = os.path.splitext(a.out)[0] + ".md"
            with open(md_path, "a") as fh:
                fh.write("\n".join(md) + "\n")
        return 0
    if a.device == "cpu":
        torch.set_num_threads(1)
    kw = (
        {"size": a.size, "map_net": a.map_net or None, "source": a.source_domain}
        if a.suite == "digits"
        else {}
    )
    t0 = time.perf_counter()
    rows = bench.run(a.suite, a.seeds, a.first_seed, a.steps or None, a.device, **kw)
    total = time.perf_counter() - t0
    print(bench.table(rows) + f"\n(total {total:.0f} s)")
    hw = hardware() if a.device != "cpu" else "2-core CPU, shared with other jobs (1 torch thread)"
    result = {"suite": a.suite, "rows": rows, "total_seconds": round(total, 1), "hardware": hw, "date": today(),
              "command": "python packages/neural-ot/benchmarks/bench_neural_ot.py " + " ".join(sys.argv[1:])}  # fmt: skip
    if a.save:
        os.makedirs(os.path.dirname(os.path.abspath(a.save)), exist_ok=True)
        with open(a.save, "w") as fh:
            json.dump(result, fh, indent=1)
    if a.json:
        write_results(entries(result), a.json, f"neural-ot {a.suite}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
