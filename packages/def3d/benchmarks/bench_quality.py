"""Held-out quality of DEF-Points (small preset) vs the PCA baseline, hist vs MSE heads, several seeds.

One (head, seed) run per call writes ``<out>/run-<head>-<seed>.json``; ``--aggregate`` turns the
runs into docs/benchmarks/def3d.{json,md} (mean ± std over seeds). Examples:

    python packages/def3d/benchmarks/bench_quality.py --head hist --seed 0 --steps 300 --out /tmp/def3d-bench
    python packages/def3d/benchmarks/bench_quality.py --aggregate --out /tmp/def3d-bench
    # on a GPU: the paper's presets and more data (DEF-Points, then DEF-Image on 64x64 range images)
    python packages/def3d/benchmarks/bench_quality.py --preset d6w158 --patch-points 4096 --steps 3000 \
        --batch-size 16 --train-patches 8192 --device cuda --head hist --seed 0 --out /tmp/def3d-gpu
    python packages/def3d/benchmarks/bench_quality.py --preset unet152 --steps 3000 --batch-size 32 \
        --train-patches 8192 --device cuda --head hist --seed 0 --out /tmp/def3d-gpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def run(a) -> None:
    from def3d import PRESETS, DataConfig, DEF3DTrainConfig, ModelConfig, train
    from def3d.evaluate import evaluate_fields, fit_pca_baseline

    d = DataConfig(resolution=0.05, patch_points=a.patch_points, noise="0,0.25", patches_per_shape=8)
    m = ModelConfig(**{**PRESETS[a.preset], "head": a.head})
    t = DEF3DTrainConfig(steps=a.steps, batch_size=a.batch_size, train_patches=a.train_patches, val_patches=32,
                         eval_every=max(a.steps // 4, 1), checkpoint_every=0, log_every=25)  # fmt: skip
    start = time.perf_counter()
    model = train(m, d, t, out=None, seed=a.seed, device=a.device, plot=False)
    seconds = time.perf_counter() - start
    model.net.to("cpu")
    kind = m.model
    base = fit_pca_baseline(d, 16, seed=0) if kind == "points" else None
    rows = evaluate_fields(model, d, (0.0, 0.25), a.test_patches, base, kind)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = {"head": a.head, "seed": a.seed, "preset": a.preset, "steps": a.steps, "train_seconds": seconds,
           "patch_points": a.patch_points, "device": a.device, "rows": rows}  # fmt: skip
    (out / f"run-{a.preset}-{a.head}-{a.seed}.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps(rec, indent=1))


def aggregate(a) -> None:
    from papercore.bench import Entry, hardware, today, write_results

    runs = [json.loads(p.read_text()) for p in sorted(Path(a.out).glob("run-*.json"))]
    entries = []
    hw = a.hardware or hardware()
    for preset in sorted({r["preset"] for r in runs}):
        for sigma in (0.0, 0.25):
            stats = {}
            for r in runs:
                if r["preset"] != preset:
                    continue
                for row in r["rows"]:
                    if row["sigma_r"] == sigma:
                        key = "PCA baseline" if row["method"] == "PCA baseline" else r["head"]
                        for k in ("mRMSE", "q95RMSE", "mRecall@1r", "mFPR@1r", "mRecall@4r", "mFPR@4r"):
                            stats.setdefault((key, k), []).append(row[k])
            base = {k: float(np.mean(v)) for (m, k), v in stats.items() if m == "PCA baseline"}
            for (mth, k), v in sorted(stats.items()):
                if mth == "PCA baseline":
                    continue
                mean, std = float(np.mean(v)), float(np.std(v))
                seeds = len(v)
                name = f"DEF-Points {preset} {mth}, sigma={sigma}r ({seeds} seeds, mean; std {std:.4f})"
                entries.append(Entry(name, k, mean, "PCA baseline (threshold fit on training patches)", base[k],
                                     mean / base[k] if base[k] else float("nan"), hw, today(), a.command))  # fmt: skip
    if a.eval_results:  # a `def3d eval` results.json (e.g. of the built-in model), same baseline
        rows = json.loads(Path(a.eval_results).read_text())["fields"]
        for row in rows:
            if row["method"] == "PCA baseline":
                continue
            base = next(b for b in rows if b["method"] == "PCA baseline" and b["sigma_r"] == row["sigma_r"])
            for k in ("mRMSE", "q95RMSE", "mRecall@1r", "mFPR@1r", "mRecall@4r", "mFPR@4r"):
                entries.append(Entry(f"built-in model ({row['method']}), sigma={row['sigma_r']}r", k, row[k],
                                     "PCA baseline (threshold fit on training patches)", base[k],
                                     row[k] / base[k] if base[k] else float("nan"), hw, today(), a.eval_command))  # fmt: skip
    write_results(entries, a.json, "def3d: held-out synthetic patches")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--head", default="hist", choices=["hist", "mse", "l1"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-points", type=int, default=512)
    p.add_argument("--train-patches", type=int, default=512)
    p.add_argument("--test-patches", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="/tmp/def3d-bench")
    p.add_argument("--aggregate", action="store_true")
    p.add_argument(
        "--json", default=None, help="with --aggregate: results JSON (a .md table is written next to it)"
    )
    p.add_argument("--hardware", default="")
    p.add_argument("--command", default="")
    p.add_argument("--eval-results", default=None, help="with --aggregate: also a `def3d eval` results.json")
    p.add_argument("--eval-command", default="def3d eval --patches 32 --noise 0,0.25,1 --shapes 3")
    a = p.parse_args()
    torch.set_num_threads(1 if a.device == "cpu" else torch.get_num_threads())
    aggregate(a) if a.aggregate else run(a)


if __name__ == "__main__":
    main()
