"""Choosing MSG-V's weight λ on the validation scenes (never the test scenes): MSG-L2 and MSG-V for
each λ, one seed, the benchmark's CPU-sized network and budget; prints every metric on validation.

    python packages/depth-sr/benchmarks/bench_lambda.py --steps 800 --lams 0.01 0.05 0.2
"""

from __future__ import annotations

import argparse
import time

import torch

from depth_sr.config import DSRTrainConfig, MSGConfig, SceneConfig
from depth_sr.metrics import evaluate, mean_metrics
from depth_sr.train import fit, full_batch, scene_splits


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    p.add_argument("--scale", type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(1)
    train, val, _ = scene_splits(SceneConfig(), 160, 16, 0, seed=0)
    lr, rgb, hr, K = full_batch(val, a.scale)
    msg = MSGConfig(scale=a.scale, width=16, y_channels=16, depth_channels=32)
    for loss, lam in [("l2", 0.0)] + [("mix", x) for x in a.lams]:
        t = time.time()
        tcfg = DSRTrainConfig(steps=a.steps, loss=loss, lam=lam, eval_every=100, checkpoint_every=0)
        model = fit(msg, tcfg, train, val, plot=False)
        with torch.no_grad():
            m = mean_metrics(evaluate(model.upsample(lr, rgb), hr, K))
        print(loss, lam, {k: round(v, 4) for k, v in m.items()}, f"{time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
