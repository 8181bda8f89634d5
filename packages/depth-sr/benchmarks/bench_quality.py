"""Quality benchmark: MSG-L2 against MSG-V (L2 + lambda MSE_v) against bicubic, joint bilateral and
the guided filter on the same synthetic test scenes; DIP-V against bicubic on single images.

Equal steps for both networks, several seeds (mean +- std), weights kept by the validation loss
(never the test set). CPU default: small scale; GPU (``--device cuda``): pass larger budgets, e.g.
``--n-train 2000 --steps 6000 --full-width --scales 4 8``.

    python packages/depth-sr/benchmarks/bench_quality.py --out docs/benchmarks/depth-sr
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from depth_sr.baselines import BASELINES, bicubic
from depth_sr.config import DIPConfig, DSRTrainConfig, MSGConfig, SceneConfig
from depth_sr.dip import dip_v
from depth_sr.metrics import METRICS, evaluate, mean_metrics
from depth_sr.train import fit, full_batch, scene_splits
from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.io import write_json


def ms(values):
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=int, nargs="+", default=[4])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=160)
    p.add_argument("--n-val", type=int, default=16)
    p.add_argument("--n-test", type=int, default=24)
    p.add_argument("--full-width", action="store_true", help="Hui et al.'s widths (default: a CPU-sized net)")
    p.add_argument("--dip-images", type=int, default=3)
    p.add_argument("--dip-steps", type=int, default=300)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write OUT.json, OUT.md and OUT-details.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = a.device
    hw = (
        hardware()
        if dev != "cpu"
        else f"{hardware()}, {a.threads} thread(s) of a 2-core CPU shared with other jobs"
    )
    scene = SceneConfig(size=a.size)
    train_s, val_s, test_s = scene_splits(scene, a.n_train, a.n_val, a.n_test, seed=0)
    details, entries = {"args": vars(a) | {"out": str(a.out)}, "hardware": hw, "date": today()}, []
    for scale in a.scales:
        lr, rgb, hr, K = full_batch(test_s, scale)
        res = {}
        for name, f in BASELINES.items():
            res[name] = {k: [v] for k, v in mean_metrics(evaluate(f(lr, rgb), hr, K)).items()}
        widths = {} if a.full_width else {"width": 16, "y_channels": 16, "depth_channels": 32}
        msg = MSGConfig(scale=scale, **widths)
        for loss in ("l2", "mix"):
            key = {"l2": "MSG-L2", "mix": "MSG-V"}[loss]
            res[key] = {k: [] for k in METRICS}
            res[key]["seconds"] = []
            for seed in range(a.seeds):
                t0 = time.perf_counter()
                tcfg = DSRTrainConfig(steps=a.steps, batch_size=a.batch_size, crop=a.crop, loss=loss, lam=a.lam,
                                      eval_every=max(1, a.steps // 8), checkpoint_every=0)  # fmt: skip
                model = fit(
                    msg, tcfg, train_s, val_s, seed=seed, device="cpu" if dev == "cpu" else "auto", plot=False
                )
                model = model.to(dev)
                with torch.no_grad():
                    pred = model.upsample(lr.to(dev), rgb.to(dev)).cpu()
                for k, v in mean_metrics(evaluate(pred, hr, K)).items():
                    res[key][k].append(v)
                res[key]["seconds"].append(time.perf_counter() - t0)
                print(f"x{scale} {key} seed {seed}: rmse {res[key]['rmse'][-1]:.4f} msev {res[key]['msev'][-1]:.4f} "
                      f"({res[key]['seconds'][-1]:.0f} s)", flush=True)  # fmt: skip
        details[f"x{scale}"] = {m: {k: ms(v) for k, v in r.items()} for m, r in res.items()}
        v, l2, bic = (
            details[f"x{scale}"]["MSG-V"],
            details[f"x{scale}"]["MSG-L2"],
            details[f"x{scale}"]["bicubic"],
        )
        cmd = command_line()
        for metric in ("msev", "rmse"):
            entries.append(Entry(f"x{scale} MSG-V", metric, v[metric][0], "MSG-L2", l2[metric][0],
                                 v[metric][0] / l2[metric][0], hw, today(), cmd))  # fmt: skip
            for m in ("MSG-V", "MSG-L2"):
                d = details[f"x{scale}"][m]
                entries.append(Entry(f"x{scale} {m}", metric, d[metric][0], "bicubic", bic[metric][0],
                                     d[metric][0] / bic[metric][0], hw, today(), cmd))  # fmt: skip
        lines = [f"| x{scale} | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
        for m, r in details[f"x{scale}"].items():
            lines.append(f"| {m} | " + " | ".join(f"{r[k][0]:.4g} ± {r[k][1]:.2g}" if r[k][1] else f"{r[k][0]:.4g}"
                                                for k in METRICS) + " |")  # fmt: skip
        print("\n".join(lines), flush=True)
        details[f"x{scale}-table"] = "\n".join(lines)
    # DIP-V on single images, x4
    if a.dip_images:
        scale = 4
        lr, rgb, hr, K = full_batch(test_s[: a.dip_images], scale)
        rows = []
        for i in range(a.dip_images):
            t0 = time.perf_counter()
            d = dip_v(lr[i : i + 1].to(dev), rgb[i : i + 1].to(dev), test_s[i].K.scaled(1 / scale),
                      DIPConfig(steps=a.dip_steps), seed=i).cpu()  # fmt: skip
            md = mean_metrics(evaluate(d, hr[i : i + 1], K[i : i + 1]))
            mb = mean_metrics(evaluate(bicubic(lr[i : i + 1], rgb[i : i + 1]), hr[i : i + 1], K[i : i + 1]))
            rows.append({"image": i, "dip_v": md, "bicubic": mb, "seconds": time.perf_counter() - t0})
            print(f"DIP-V image {i}: msev {md['msev']:.4f} vs bicubic {mb['msev']:.4f}; rmse {md['rmse']:.4f} vs "
                  f"{mb['rmse']:.4f}", flush=True)  # fmt: skip
        details["dip"] = rows
        dv = statistics.mean(r["dip_v"]["msev"] for r in rows)
        bv = statistics.mean(r["bicubic"]["msev"] for r in rows)
        entries.append(
            Entry("x4 DIP-V (single images)", "msev", dv, "bicubic", bv, dv / bv, hw, today(), command_line())
        )
    if a.out is not None:
        write_results(entries, a.out.with_suffix(".json"), "depth-sr quality (synthetic scenes)")
        write_json(a.out.parent / (a.out.name + "-details.json"), details)
    else:
        write_results(entries, None)
    print(json.dumps({k: v for k, v in details.items() if k.endswith("table")}, indent=1)[:0])


if __name__ == "__main__":
    main()
