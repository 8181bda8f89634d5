"""Training speed of class-guided GNOT at the reference's image configuration (GPU step).

The reference (GNOT ``dataset_transfer.ipynb``) trains 32×32 images with a conditional UNet (base
48 channels, 128-d noise), a ResNet potential, 10 map updates per potential update, per map update
16 classes × 2 images × 2 noise draws. This script times that configuration here (UNet base =
width // 8 = 48, z_dim 128, Z = 2, class_size 2, 10 glyph classes) in max-min steps per second and
map updates per second. The reference's own speed is not published: not reproduced.

    python packages/neural-ot/benchmarks/bench_speed.py --device cuda --steps 200 --json speed.json
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("PAPERCORE_PROGRESS", "0")

import torch  # noqa: E402

from neural_ot import NOTConfig, NOTTrainConfig, data, fit  # noqa: E402
from papercore.bench import Entry, command_line, hardware, today, write_results  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--json", help="write the entries here")
    a = ap.parse_args(argv)
    if a.device == "cpu":
        torch.set_num_threads(1)
    p = data.digits_to_glyphs(size=a.size, seed=0, source="glyphs-b")
    lt = data.labelled_subset(p.target_labels, 10, seed=0)
    cfg = NOTConfig(
        map_net="unet", potential_net="resnet", width=384, z_dim=128, z_size=2, lr_map=1e-4, lr_potential=1e-4
    )
    every = max(1, a.steps // 10)
    m = fit(p.source, p.target, "class-guided", cfg,
            NOTTrainConfig(steps=a.steps, batch_size=20, checkpoint_every=0, log_every=every),
            source_labels=p.source_labels, target_labels=lt, image_shape=p.image_shape, class_size=2,
            device=a.device, plot=False)  # fmt: skip
    first, last = m.info["first_record"], m.info["last_record"]  # the first record's steps include warm-up
    sps = (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])
    print(
        f"{sps:.2f} max-min steps/s ({10 * sps:.1f} map updates/s) on {a.device}, {a.size}x{a.size}, UNet base 48"
    )
    hw = hardware() if a.device != "cpu" else "2-core CPU, shared with other jobs"
    e = Entry(f"neural-ot GNOT class-guided {a.size}x{a.size} UNet(48)+ResNet, 10 classes x 2 x Z=2, 10:1",
              "max-min steps per second", sps, "reference notebook (speed not published)", float("nan"), float("nan"),
              hw, today(), command_line())  # fmt: skip
    write_results([e], a.json, "neural-ot speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
