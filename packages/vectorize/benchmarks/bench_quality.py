"""Quality and speed of the pipeline against the skeleton baseline and vtracer on seeded synthetic pages.

    python packages/vectorize/benchmarks/bench_quality.py --pages 4 --size 256 --seeds 3 --model none \
        --json docs/benchmarks/vectorize.json

Per page: soft raster IoU, d_H and d_M on skeletons, #P / #P_truth, for ours (merged), ours before
merging, the network's raw output (with a model), skeleton + Douglas-Peucker, vtracer (outline
tracing; IoU of its SVG rendered by cairosvg, #P = its path segments). The same pages rotated by 90°
give the rotation drop of our IoU. ``--speed`` times one 1024x1024 page. ``--train-minutes`` first
trains the primitive network for that long (the GPU run). Results go to ``--json`` (papercore.bench
entries) and a detailed ``.details.json`` next to it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.io import write_json
from vectorize import synth
from vectorize.baselines import skeleton_baseline, svg_ink, svg_segment_count, vtracer_svg
from vectorize.config import NetConfig, PipelineConfig, RefineConfig, VectorizeTrainConfig
from vectorize.evaluate import score, summarize, table
from vectorize.pipeline import Vectorizer


def models(name: str, device: str, train_minutes: float, out: Path | None):
    from vectorize.train import builtin, load_model, train_primitives

    if train_minutes > 0:  # train for a wall-clock budget: measure a few steps, then size the run
        cfg = NetConfig()
        probe = time.perf_counter()
        train_primitives(
            cfg,
            VectorizeTrainConfig(steps=20, batch_size=64, eval_every=0, checkpoint_every=0),
            device=device,
        )
        per = (time.perf_counter() - probe) / 20
        steps = max(50, int(train_minutes * 60 / per))
        print(f"training the primitive network for {steps} steps (~{train_minutes} min)", flush=True)
        net, _ = train_primitives(cfg, VectorizeTrainConfig(steps=steps, batch_size=64, eval_every=max(steps // 8, 50),
                                                            checkpoint_every=0), out=out, device=device)  # fmt: skip
        return net.to(device)
    if name == "none":
        return None
    if name == "builtin":
        return builtin("primitives", device)
    return load_model(Path(name) / "primitives", device)


def run(args) -> dict:
    dev = args.device
    net = models(args.model, dev, args.train_minutes, Path(args.train_out) if args.train_out else None)
    cfg = PipelineConfig(clean=False, primitives=args.primitives)
    vec = Vectorizer(net, None, cfg, RefineConfig(iterations=args.iterations), device=dev)
    rows, rot = [], []
    for seed in range(args.seeds):
        for i, (img, _, truth) in enumerate(synth.pages(args.pages, 1000 + seed, args.size)):
            t = time.perf_counter()
            res = vec(img, seed=seed)
            first = len(rows)
            secs = time.perf_counter() - t
            base = skeleton_baseline(res.ink)
            rec = {"seed": seed, "page": i, "seconds": secs}
            rows.append({"method": "ours", **rec, **score(res.drawing, truth)})
            rows.append({"method": "ours (before merging)", **rec, **score(res.refined, truth)})
            if net is not None:
                rows.append({"method": "network only", **rec, **score(res.raw, truth)})
            rows.append({"method": "skeleton + DP", **rec, **score(base, truth)})
            if args.vtracer:
                svg = vtracer_svg(img)
                rows.append(
                    {
                        "method": "vtracer",
                        **rec,
                        **score(svg_ink(svg, *img.shape), truth, svg_segment_count(svg)),
                    }
                )
            if args.rotate:
                r = vec(np.ascontiguousarray(np.rot90(img, -1)), seed=seed)
                rot.append({"seed": seed, "page": i, "iou": score(res.drawing, truth)["iou"],
                            "iou_rot": score(r.drawing, truth.rotated90())["iou"]})  # fmt: skip
            print(f"seed {seed} page {i}: ours IoU {rows[first]['iou']:.3f} in {secs:.1f} s", flush=True)
    out = {"rows": rows, "summary": summarize(rows), "rotation": rot}
    by = {m: [r for r in rows if r["method"] == m] for m in {r["method"] for r in rows}}
    if net is not None:
        better = [o["iou"] > n["iou"] for o, n in zip(by["ours (before merging)"], by["network only"])]
        out["refinement_improves_fraction"] = float(np.mean(better))
    if rot:
        out["rotation_drop_points"] = float(np.mean([100 * (r["iou"] - r["iou_rot"]) for r in rot]))
    if args.speed:
        img, _, _ = synth.sample(np.random.default_rng(7), 1024, 1024, degrade_p=0.0)
        t = time.perf_counter()
        res = vec(img)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        out["seconds_per_megapixel"] = (time.perf_counter() - t) / 1.048576
        out["speed_stages"] = res.seconds
    return out


def entries(out: dict, args) -> list[Entry]:
    s = out["summary"]
    hw = args.hardware or hardware()
    cmd = command_line()
    ents = []
    for base in ("skeleton + DP", "vtracer"):
        if base not in s:
            continue
        for metric, higher in (("iou", True), ("d_m", False), ("n_ratio", False)):
            v, b = s["ours"][metric][0], s[base][metric][0]
            ents.append(Entry(f"pages {args.size}px x{args.pages} x{args.seeds} seeds ({args.model})",
                              f"{metric} (mean; {'higher' if higher else 'lower'} is better)", v, base, b,
                              v / b if b else float("nan"), hw, today(), cmd))  # fmt: skip
    if "rotation_drop_points" in out:
        ents.append(Entry("rotation by 90°", "IoU drop (points)", out["rotation_drop_points"], "unrotated", 0.0,
                          float("nan"), hw, today(), cmd))  # fmt: skip
    if "refinement_improves_fraction" in out:
        ents.append(Entry("refinement vs raw network", "fraction of pages with higher IoU",
                          out["refinement_improves_fraction"], "raw network", 0.0, float("nan"), hw, today(), cmd))  # fmt: skip
    if "seconds_per_megapixel" in out:
        ents.append(Entry("1024x1024 page", "seconds", out["seconds_per_megapixel"] * 1.048576, "goal", 60.0,
                          out["seconds_per_megapixel"] * 1.048576 / 60, hw, today(), cmd))  # fmt: skip
    return ents


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--model", default="none", help="none, builtin or a `vectorize train` folder")
    p.add_argument(
        "--train-minutes", type=float, default=0.0, help="train a network for this long first (GPU run)"
    )
    p.add_argument("--train-out", default=None)
    p.add_argument("--primitives", default="both")
    p.add_argument("--iterations", type=int, default=RefineConfig().iterations)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-vtracer", dest="vtracer", action="store_false")
    p.add_argument("--no-rotate", dest="rotate", action="store_false")
    p.add_argument("--speed", action="store_true", help="time one 1024x1024 page")
    p.add_argument("--hardware", default="")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = run(args)
    print(table(out["summary"], ("iou", "iou_mask", "d_h", "d_m", "n_ratio", "seconds")))
    for k in (
        "rotation_drop_points",
        "refinement_improves_fraction",
        "seconds_per_megapixel",
        "speed_stages",
    ):
        if k in out:
            print(k, json.dumps(out[k]))
    ents = entries(out, args)
    write_results(ents, args.json, "vectorize")
    if args.json:
        write_json(Path(args.json).with_suffix(".details.json"), {"args": vars(args), **out})


if __name__ == "__main__":
    main()
