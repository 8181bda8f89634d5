"""Real line drawings: circuit schematics drawn by schemdraw (its SVG backend, text labels included),
rasterised by cairosvg at 1-2 px line width, vectorised back; IoU and primitive count against the
original SVG.

    pip install schemdraw cairosvg
    python packages/vectorize/benchmarks/bench_real.py --drawings 3 --json /tmp/real.json

The original's primitive count is its SVG path segments plus 4 per circle (a circle is four
quadratic-ish arcs); text glyphs are not counted there but are ink in the raster.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch

from papercore.io import write_json
from vectorize.baselines import skeleton_baseline, svg_ink, svg_segment_count
from vectorize.config import PipelineConfig, RefineConfig
from vectorize.pipeline import Vectorizer
from vectorize.raster import iou, render


def schematic(seed: int, lw: float) -> bytes:
    """A random chain-and-loop circuit of resistors, capacitors, inductors, diodes and sources."""
    import schemdraw
    import schemdraw.elements as elm

    schemdraw.use("svg")
    rng = np.random.default_rng(seed)
    kinds = [elm.Resistor, elm.Capacitor, elm.Inductor2, elm.Diode, elm.SourceV, elm.Line, elm.Ground]
    with schemdraw.Drawing(show=False) as d:
        d.config(lw=lw, fontsize=10)
        for i in range(int(rng.integers(6, 12))):
            k = kinds[int(rng.integers(len(kinds) - 1))]
            e = k()
            e = [e.right(), e.down(), e.left(), e.up()][int(rng.integers(4))] if i % 3 else e.right()
            d += e.label(f"{k.__name__[0]}{i}") if k is not elm.Line else e
            if rng.random() < 0.25:
                d += elm.Dot()
    data = d.get_imagedata("svg")
    return data if isinstance(data, bytes) else data.encode()


def original_count(svg: str) -> int:
    return svg_segment_count(svg) + 4 * len(re.findall(r"<circle", svg))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--drawings", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.5, help="px per pt: lw 1 pt -> 1.5 px lines")
    p.add_argument("--iterations", type=int, default=RefineConfig().iterations)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    vec = Vectorizer(
        None, None, PipelineConfig(clean=False), RefineConfig(iterations=args.iterations), device=args.device
    )
    rows = []
    for s in range(args.drawings):
        svg = schematic(s, lw=1.0).decode()
        m = re.search(r'viewBox="([-\d.e ]+)"', svg)
        w, h = (float(v) for v in m.group(1).split()[2:])
        W, H = int(w * args.scale), int(h * args.scale)
        truth = svg_ink(svg, H, W)
        t = time.perf_counter()
        res = vec(1 - truth)
        secs = time.perf_counter() - t
        base = skeleton_baseline(truth)
        n0 = original_count(svg)
        rows.append({"drawing": s, "size": [H, W], "original_primitives": n0, "seconds": secs,
                     "ours_iou": iou(render(res.drawing), truth, None), "ours_n": len(res.drawing),
                     "skeleton_iou": iou(render(base), truth, None), "skeleton_n": len(base)})  # fmt: skip
        print(rows[-1], flush=True)
    summ = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("drawing", "size")}
    print("mean:", summ)
    if args.json:
        write_json(args.json, {"rows": rows, "mean": summ, "args": vars(args)})


if __name__ == "__main__":
    main()
