"""Refine noisy primitives of a synthetic 64x64 patch and write the result as SVG and DXF."""

import sys
from pathlib import Path

import numpy as np

from vectorize import RefineConfig, iou, read_dxf, refine, render, synth, write_dxf, write_svg
from vectorize.drawing import Drawing

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rng = np.random.default_rng(0)
truth = synth.drawing(rng, 64, 64, n=5, clutter=False)
target = render(truth)
noisy = Drawing(truth.lines + rng.uniform(-1.5, 1.5, truth.lines.shape), truth.curves, 64, 64)
noisy.lines[:, 4] = np.clip(noisy.lines[:, 4], 0.5, None)
fit = refine(target[None], [noisy], RefineConfig(iterations=30))[0]
print(
    f"{len(truth)} primitives; IoU {iou(render(noisy), target, None):.3f} -> {iou(render(fit), target, None):.3f}"
)
write_svg(out / "patch.svg", fit)
write_dxf(out / "patch.dxf", fit)
assert len(read_dxf(out / "patch.dxf")) == len(fit)
