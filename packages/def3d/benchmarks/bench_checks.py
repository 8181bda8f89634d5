"""Exact-ground-truth checks of the issue's acceptance list, as numbers (seconds on a CPU).

python packages/def3d/benchmarks/bench_checks.py --json /tmp/def3d-checks.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def main() -> None:
    from def3d import (
        DataConfig,
        HistHead,
        annotate,
        box,
        curve_metrics,
        extract_curves,
        fuse_views,
        render_view,
        scaled_shape,  # fmt: skip
        true_corners,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    out = {}
    cube = box(1.0)
    x, _, lab = cube.sample(20000, torch.Generator().manual_seed(0))
    d = annotate(x, lab, cube, upper=10.0).numpy()
    q = np.abs(x.numpy())
    ref = np.sort(0.5 - q, 1)  # on a face, the nearest edge is at the smaller of the two in-face gaps
    out["cube_annotator_max_abs_error"] = float(np.abs(d - ref[:, 1]).max())
    h = HistHead()
    t = torch.rand(100000, generator=torch.Generator().manual_seed(0))
    out["hist_target_sum_max_dev"] = float((h.target(t).sum(-1) - 1).abs().max())
    out["hist_decode_max_error"] = float((h.decode(torch.log(h.target(t).clamp_min(1e-30))) - t).abs().max())
    r = 0.05
    cfg = DataConfig(resolution=r)
    fr = []
    for fam, seed in (("L", 3), ("T", 4), ("stepped", 5), ("composite", 6)):
        s = scaled_shape(fam, seed)
        dirs = ([1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 1, 1], [-1, -1, -1])
        views = [
            render_view(s, torch.tensor(v, dtype=torch.float64), torch.zeros(3), 128, r, cfg) for v in dirs
        ]
        pts = torch.cat([v["points"][v["mask"]] for v in views])
        truth = annotate(pts, torch.cat([v["surface"][v["mask"]] for v in views]), s)
        for m in ("min", "adv60"):
            f = fuse_views(pts, views, [v["distances"] for v in views], r, m).double()
            fr.append(float(((f - truth).abs() < r).double().mean()))
    out["fusion_true_fields_fraction_within_r_min_over_shapes"] = min(fr)
    rr = 0.02
    x, _, lab = cube.sample(int(cube.area / rr**2), torch.Generator().manual_seed(0))
    c = extract_curves(x.numpy(), annotate(x, lab, cube).numpy(), rr)
    m = curve_metrics(c.polylines, c.corners, cube.edges, true_corners(cube.edges), rr / 2)
    out["cube_curves"] = {
        "corners": len(c.corners),
        "edges": len(c.polylines),
        "hausdorff_r": m["hausdorff"] / rr,
    }
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
