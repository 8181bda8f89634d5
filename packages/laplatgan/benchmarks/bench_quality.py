"""Quality benchmark: LaplatGAN (fixed penalty, and the notebook's original GANs) against l-GAN, a latent
GMM, AE reconstructions (upper bound) and a real-vs-real oracle, per level, over several seeds.

Equal compute: every GAN uses the same critic:generator ratio; l-GAN gets as many generator updates
as the pyramid's GANs together. All models of a seed share its autoencoders. Nothing is selected on
test data: autoencoders keep their best validation Chamfer distance, GANs run a fixed budget.

Also: the upsampling mode on real low-resolution test clouds (per-cloud Chamfer distance to the
real higher-resolution cloud), against the fixed kNN-mean upsampler U alone.

CPU-sized run (docs/benchmarks/laplatgan.md; the defaults: levels 128/256/512, 240 training tables,
500 autoencoder steps per level, 1500 generator steps per GAN level, 5 critic steps each)::

    python packages/laplatgan/benchmarks/bench_quality.py --seeds 3 --out docs/benchmarks/laplatgan.json

The paper-sized run (512/1024/2048 points, ``--device cuda``) is the GPU suite's step.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import statistics
import time
from pathlib import Path

import torch

from laplatgan import LGAN, LaplatGANConfig, LaplatTrainConfig, LatentGMM, equal_compute_steps, fit, synthetic
from laplatgan.data import pyramid
from laplatgan.evaluate import per_level
from laplatgan.pyramid import make_critic, make_generator
from laplatgan.train import conditions, encode, train_gan
from laplatgan.upsample import knn_upsample
from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.geometry import chamfer

METRICS = ["1nna-cd", "mmd-cd", "cov-cd", "jsd"]


def original_gans(model, train, cfg, tcfg, seed, device, first_level=0, **overrides):
    """The pyramid's GANs of levels ``first_level``+ retrained on the same autoencoders with ``overrides``
    (the notebook's penalty on the residual alone, ``original_gp=True``, acts on levels 2+ only; its
    output BatchNorm, ``gen_output="batchnorm"``, on level 1)."""
    orig = copy.deepcopy(model)
    ocfg = dataclasses.replace(cfg, **overrides)

    tr = pyramid(train, model.levels, seed)
    for i, n in enumerate(model.levels):
        if i < first_level:
            continue
        orig.gens[i], orig.critics[i] = make_generator(ocfg, i), make_critic(ocfg, i)
        real = encode(orig.aes[i], tr[n], device=device)
        cond = None if i == 0 else conditions(orig, i, tr[model.levels[i - 1]], device=device)
        train_gan(
            orig.gens[i],
            orig.critics[i],
            real,
            cond,
            ocfg,
            tcfg,
            seed=seed + 20 + i,
            device=device,
            plot=False,
        )
    orig.cfg = ocfg
    return orig.eval()


def run_seed(args, seed: int) -> dict:
    cfg = LaplatGANConfig(levels=tuple(args.levels), encoder=tuple(args.encoder), bottleneck=args.bottleneck)
    tcfg = LaplatTrainConfig(steps=args.steps, ae_steps=args.ae_steps, batch_size=args.batch, eval_every=args.eval_every,
                             checkpoint_every=0, log_every=50)  # fmt: skip
    t0 = time.perf_counter()
    data = synthetic(args.shape_class, args.n_train, args.n_val, args.n_test, max(cfg.levels), seed)
    model = fit(data, cfg, tcfg, None, seed, args.device, plot=False)
    t_fit = time.perf_counter() - t0
    gp_only = original_gans(model, data.train, cfg, tcfg, seed, args.device, 1, original_gp=True)
    orig = original_gans(
        model, data.train, cfg, tcfg, seed, args.device, original_gp=True, gen_output="batchnorm"
    )
    lgan = LGAN(model.aes[-1], cfg)
    lgan.fit(
        data.train,
        tcfg,
        equal_compute_steps(tcfg, len(cfg.levels)),
        seed=seed + 30,
        device=args.device,
        plot=False,
    )
    gmm = LatentGMM(model.aes[-1], n_components=args.gmm_components, seed=seed).fit(
        data.train, device=args.device
    )
    n = len(data.test)
    tp = pyramid(data.test, cfg.levels, seed)
    recon = {lv: model.reconstruct(tp[lv], lv) for lv in cfg.levels}
    kw = dict(seed=seed, device=args.device)
    res = {
        "laplatgan (fixed GP)": per_level(model.sample(n, seed), data.test, cfg.levels, METRICS, **kw),
        "laplatgan (original GP)": per_level(gp_only.sample(n, seed), data.test, cfg.levels, METRICS, **kw),
        "laplatgan (notebook: original GP + BN output)": per_level(
            orig.sample(n, seed), data.test, cfg.levels, METRICS, **kw
        ),
        "l-gan (AE top level)": per_level(lgan.sample(n, seed), data.test, cfg.levels, METRICS, **kw),
        f"latent GMM ({gmm.gmm.n_components} full)": per_level(
            gmm.sample(n, seed), data.test, cfg.levels, METRICS, **kw
        ),
        "AE reconstruction (upper bound)": per_level(recon, data.test, cfg.levels, METRICS, **kw),
        "oracle (real vs real)": per_level(data.test2, data.test, cfg.levels, METRICS, **kw),
    }
    # upsampling mode: each real low-level test cloud up the chain, per-cloud CD to its own real points
    low = tp[cfg.levels[0]]
    up = {
        "laplatgan (fixed GP)": model.upsample(low, seed),
        "laplatgan (original GP)": gp_only.upsample(low, seed),
    }
    up["kNN-mean U alone"], x = {}, low
    for lv in cfg.levels[1:]:
        x = knn_upsample(x, cfg.upsample_k)
        up["kNN-mean U alone"][lv] = x
    upsampling = {
        m: {str(lv): float(chamfer(v[lv], tp[lv]).mean()) for lv in cfg.levels[1:]} for m, v in up.items()
    }
    upsampling["AE reconstruction of the real cloud"] = {
        str(lv): float(chamfer(recon[lv], tp[lv]).mean()) for lv in cfg.levels[1:]
    }
    ae_val = {k: v.get("best_val_cd") for k, v in model.meta["stages"].items() if k.startswith("ae")}
    print(
        f"seed {seed}: pyramid trained in {t_fit:.0f} s, seed total {time.perf_counter() - t0:.0f} s; AE val CD {ae_val}",
        flush=True,
    )
    return {
        "results": res,
        "upsampling_cd": upsampling,
        "ae_val_cd": ae_val,
        "seconds": time.perf_counter() - t0,
    }


def summarize(runs: list[dict]) -> dict:
    out: dict = {}
    for model in runs[0]["results"]:
        out[model] = {}
        for lv in runs[0]["results"][model]:
            out[model][lv] = {}
            for m in METRICS:
                vals = [r["results"][model][lv][m] for r in runs]
                out[model][lv][m] = _mean_std(vals)
    return out


def _mean_std(vals) -> tuple[float, float]:
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def summarize_upsampling(runs: list[dict]) -> dict:
    first = runs[0]["upsampling_cd"]
    return {m: {lv: _mean_std([r["upsampling_cd"][m][lv] for r in runs]) for lv in first[m]} for m in first}


def markdown(summary: dict, args) -> str:
    lines = ["| model | points | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for model, levels in summary.items():
        for lv, vals in levels.items():
            lines.append(
                f"| {model} | {lv} | "
                + " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in (vals[k] for k in METRICS))
                + " |"
            )
    return "\n".join(lines)


def markdown_upsampling(up: dict) -> str:
    levels = list(next(iter(up.values())))
    lines = ["| upsampling the real lowest level | " + " | ".join(f"CD at {lv} pts" for lv in levels) + " |",
             "|---|" + "---|" * len(levels)]  # fmt: skip
    for m, vals in up.items():
        lines.append(
            f"| {m} | " + " | ".join(f"{vals[lv][0]:.5f} ± {vals[lv][1]:.5f}" for lv in levels) + " |"
        )
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape-class", default="table")
    p.add_argument("--levels", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--encoder", type=int, nargs="+", default=[32, 64, 64, 128])
    p.add_argument("--bottleneck", type=int, default=128)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n-train", type=int, default=240)
    p.add_argument("--n-val", type=int, default=32)
    p.add_argument("--n-test", type=int, default=48)
    p.add_argument("--ae-steps", type=int, default=500)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--gmm-components", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--runs-out", type=Path, default=None, help="also write this process's raw runs here")
    p.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="summarise raw runs of several processes"
    )
    p.add_argument(
        "--out", "--json", type=Path, default=None, help="write the entries (JSON) and a Markdown table here"
    )
    args = p.parse_args()
    os.environ.setdefault("PAPERCORE_PROGRESS", "0")
    logging.getLogger("papercore").setLevel(logging.WARNING)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.merge:
        runs = [r for f in args.merge for r in json.loads(f.read_text())]
        args.seeds = len(runs)
    else:
        runs = [run_seed(args, s) for s in range(args.first_seed, args.first_seed + args.seeds)]
        if args.runs_out:
            args.runs_out.parent.mkdir(parents=True, exist_ok=True)
            args.runs_out.write_text(json.dumps(runs, default=str))
    summary = summarize(runs)
    up = summarize_upsampling(runs) if all("upsampling_cd" in r for r in runs) else None
    md = markdown(summary, args) + ("\n\n" + markdown_upsampling(up) if up else "")
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        hw = hardware() + (" (2-core CPU, shared with other jobs)" if args.device == "cpu" else "")
        entries = []
        best = "laplatgan (fixed GP)"
        gmm_name = next(k for k in summary if k.startswith("latent GMM"))
        for base in ("l-gan (AE top level)", gmm_name):
            for lv in summary[best]:
                for m in METRICS:
                    v, b = summary[best][lv][m][0], summary[base][lv][m][0]
                    entries.append(Entry(f"{best} @ {lv} pts", f"{m} (mean of {args.seeds} seeds)", v, base, b,
                                         v / b if b else float("nan"), hw, today(), command_line()))  # fmt: skip
        top = str(max(args.levels))
        for base in ("kNN-mean U alone", "laplatgan (original GP)") if up else ():
            v, b = up["laplatgan (fixed GP)"][top][0], up[base][top][0]
            entries.append(Entry(f"laplatgan (fixed GP) upsampling {min(args.levels)} -> {top} pts", f"CD to the real cloud (mean of {args.seeds} seeds)",
                                 v, base, b, v / b, hw, today(), command_line()))  # fmt: skip
        write_results(entries, args.out, "LaplatGAN quality (CPU-sized run)")
        raw = args.out.with_name(args.out.stem + "_runs.json")
        raw.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"out": str(args.out)},
                    "summary": summary,
                    "upsampling": up,
                    "runs": runs,
                },
                indent=1,
                default=str,
            )
        )
        with open(args.out.with_suffix(".md"), "a") as f:
            f.write(f"\n## Per level, mean ± std over {args.seeds} seeds\n\n{md}\n")


if __name__ == "__main__":
    main()
