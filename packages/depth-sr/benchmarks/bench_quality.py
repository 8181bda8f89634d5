"""Quality benchmark: MSG-L2 against MSG-V (L2 + lambda MSE_v) against bicubic, joint bilateral and
the guided filter on the same synthetic test scenes; DIP-V against bicubic on single images.

Equal steps for both networks, several seeds (mean +- std), weights kept by the validation loss
(never the test set). CPU default: small scale; GPU (``--device cuda``): pass larger budgets, e.g.
``--n-train 2000 --steps 6000 --full-width --scales 4 8``.

    python packages/depth-sr/benchmarks/bench_quality.py --out docs/benchmarks/depth-sr
"""

from __future__ import annotations

import argparse
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

_SCENES: dict = {}  # filled in-process when --jobs 1 (no files written)


def _scenes(job, key):
    from papercore.io import load_tensors

    if key not in _SCENES:
        _SCENES[key] = _unpack(load_tensors(job["scenes"] + f".{key}.safetensors"), job["device"])
    return _SCENES[key]


def _pack(scenes):
    return {"depth": torch.stack([x.depth for x in scenes]).cpu(), "rgb": torch.stack([x.rgb for x in scenes]).cpu(),
            "K": torch.stack([x.K.tensor() for x in scenes])}  # fmt: skip


def _unpack(d, device):
    from depth_sr.camera import Intrinsics
    from depth_sr.scenes import Scene

    return [Scene(d["depth"][i].to(device), torch.zeros(0), d["rgb"][i].to(device),
                  Intrinsics(*[float(v) for v in d["K"][i]])) for i in range(len(d["depth"]))]  # fmt: skip


def _train_eval(job):
    """One (scale, loss, seed) run in its own process: train on the packed scenes, score the test scenes."""
    torch.set_num_threads(job["threads"])
    dev = job["device"]
    sc = {k: _scenes(job, k) for k in ("train", "val", "test")}
    t0 = time.perf_counter()
    tcfg = DSRTrainConfig(**job["train"])
    model = fit(MSGConfig(**job["msg"]), tcfg, sc["train"], sc["val"], seed=job["seed"],
                device="cpu" if dev == "cpu" else "auto", plot=False).to(dev)  # fmt: skip
    lr, rgb, hr, K = full_batch(sc["test"], job["msg"]["scale"])
    with torch.no_grad():
        pred = model.upsample(lr, rgb)
    return job, mean_metrics(evaluate(pred, hr, K)), time.perf_counter() - t0


def _dip(job):
    torch.set_num_threads(job["threads"])
    test = _scenes(job, "test")
    i, scale = job["image"], 4
    lr, rgb, hr, K = full_batch(test[i : i + 1], scale)
    t0 = time.perf_counter()
    d = dip_v(lr, rgb, test[i].K.scaled(1 / scale), DIPConfig(steps=job["steps"]), seed=i)
    md = mean_metrics(evaluate(d, hr, K))
    mb = mean_metrics(evaluate(bicubic(lr, rgb), hr, K))
    return {"image": i, "dip_v": md, "bicubic": mb, "seconds": time.perf_counter() - t0}


def ms(values):
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=int, nargs="+", default=[4])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument(
        "--lam", type=float, default=0.05, help="MSE_v weight of MSG-V (chosen on validation scenes)"
    )
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=160)
    p.add_argument("--n-val", type=int, default=16)
    p.add_argument("--n-test", type=int, default=24)
    p.add_argument("--full-width", action="store_true", help="Hui et al.'s widths (default: a CPU-sized net)")
    p.add_argument("--dip-images", type=int, default=3)
    p.add_argument("--dip-steps", type=int, default=300)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p.add_argument(
        "--jobs", type=int, default=1, help="runs (loss, seed) and DIP images in parallel processes"
    )
    p.add_argument("--out", type=Path, default=None, help="write OUT.json, OUT.md and OUT.details.json")
    p.add_argument(
        "--json", type=Path, default=None, help="also write the entries here (the GPU suite's flag)"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = a.device
    hw = (
        hardware()
        if dev != "cpu"
        else f"{hardware()}, {a.threads} thread(s) of a 2-core CPU shared with other jobs"
    )
    scene = SceneConfig(size=a.size)
    train_s, val_s, test_s = scene_splits(
        scene, a.n_train, a.n_val, a.n_test, seed=0, device=None if dev == "cpu" else dev
    )
    details, entries = {"args": vars(a) | {"out": str(a.out)}, "hardware": hw, "date": today()}, []
    import multiprocessing as mp
    import tempfile

    from papercore.io import save_tensors

    tmp = tempfile.mkdtemp(prefix="depth-sr-bench-")
    if a.jobs > 1:
        for k, v in (("train", train_s), ("val", val_s), ("test", test_s)):
            save_tensors(f"{tmp}/scenes.{k}.safetensors", _pack(v))
    else:
        _SCENES.update(train=train_s, val=val_s, test=test_s)
    widths = {} if a.full_width else {"width": 16, "y_channels": 16, "depth_channels": 32}
    jobs = [{"scenes": f"{tmp}/scenes", "device": dev, "threads": a.threads, "seed": seed, "loss": loss,
             "msg": {"scale": scale, **widths},
             "train": {"steps": a.steps, "batch_size": a.batch_size, "crop": a.crop, "loss": loss, "lam": a.lam,
                       "eval_every": max(1, a.steps // 8), "checkpoint_every": 0}}
            for scale in a.scales for loss in ("l2", "mix") for seed in range(a.seeds)]  # fmt: skip
    dips = [{"scenes": f"{tmp}/scenes", "device": dev, "threads": a.threads, "image": i, "steps": a.dip_steps}
            for i in range(a.dip_images)]  # fmt: skip
    runs = []

    def report(job, metrics, secs):
        print(f"x{job['msg']['scale']} {job['loss']} seed {job['seed']}: rmse {metrics['rmse']:.4f} "
              f"msev {metrics['msev']:.4f} ({secs:.0f} s)", flush=True)  # fmt: skip
        runs.append((job, metrics, secs))

    if a.jobs > 1:
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            dip_async = pool.map_async(_dip, dips) if dips else None
            for r in pool.imap_unordered(_train_eval, jobs):
                report(*r)
            dip_rows = dip_async.get() if dip_async else []
    else:
        for job in jobs:
            report(*_train_eval(job))
        dip_rows = [_dip(job) for job in dips]
    cmd = command_line()
    for scale in a.scales:
        lr, rgb, hr, K = full_batch(test_s, scale)
        res = {
            name: {k: [v] for k, v in mean_metrics(evaluate(f(lr, rgb), hr, K)).items()}
            for name, f in BASELINES.items()
        }
        for loss, key in (("l2", "MSG-L2"), ("mix", "MSG-V")):
            mine = sorted((r for r in runs if r[0]["loss"] == loss and r[0]["msg"]["scale"] == scale),
                          key=lambda r: r[0]["seed"])  # fmt: skip
            res[key] = {k: [r[1][k] for r in mine] for k in METRICS}
            res[key]["seconds"] = [r[2] for r in mine]
        details[f"x{scale}"] = {m: {k: ms(v) for k, v in r.items()} for m, r in res.items()}
        v, l2, bic = (
            details[f"x{scale}"]["MSG-V"],
            details[f"x{scale}"]["MSG-L2"],
            details[f"x{scale}"]["bicubic"],
        )
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
    if dip_rows:
        for r in dip_rows:
            print(f"DIP-V image {r['image']}: msev {r['dip_v']['msev']:.4f} vs bicubic {r['bicubic']['msev']:.4f}; "
                  f"rmse {r['dip_v']['rmse']:.4f} vs {r['bicubic']['rmse']:.4f}", flush=True)  # fmt: skip
        details["dip"] = dip_rows
        dv = statistics.mean(r["dip_v"]["msev"] for r in dip_rows)
        bv = statistics.mean(r["bicubic"]["msev"] for r in dip_rows)
        entries.append(
            Entry("x4 DIP-V (single images)", "msev", dv, "bicubic", bv, dv / bv, hw, today(), cmd)
        )
    if a.json is not None:
        write_results(entries, a.json, "depth-sr quality (synthetic scenes)")
    if a.out is not None:
        write_results(entries, a.out.with_suffix(".json"), "depth-sr quality (synthetic scenes)")
        write_json(a.out.parent / (a.out.name + ".details.json"), details)
    else:
        write_results(entries, None)


if __name__ == "__main__":
    main()
