"""Data-parallel training throughput of `depth-sr train`: samples per second on 1 and on N processes
(torchrun; NCCL on GPUs, gloo on a CPU), the same global batch and seed, in the same call.

python packages/depth-sr/benchmarks/bench_ddp.py --nproc 1 2 --device cuda --json out.json   # 2 GPUs
python packages/depth-sr/benchmarks/bench_ddp.py --nproc 1                                     # one GPU

The first `--warmup` logged steps are left out of the rate (start-up, allocator, cuDNN autotuning).
NVLink multicast stays off in the launched processes (NCCL_NVLS_ENABLE=0), as the device notes require.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.testing import free_port


def run(nproc: int, args, out: Path) -> float:
    # python -m depth_sr.cli: works without the console script (the GPU suite runs from source)
    train = [sys.executable, "-m", "depth_sr.cli", "train", "--out", str(out), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--size", str(args.size), "--crop", str(args.crop), "--n-train", str(args.n_train), "--n-val", "0",
             "--log-every", "1", "--eval-every", "0", "--checkpoint-every", "0", "--no-plot",
             "--device", args.device]  # fmt: skip
    env = {**os.environ, "PAPERCORE_PROGRESS": "0", "NCCL_NVLS_ENABLE": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           f"--master-port={free_port()}", "--no-python", *train]  # fmt: skip
    subprocess.run(cmd, check=True, env=env)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("split") == "train"]
    (s0, t0), (s1, t1) = (rows[args.warmup - 1]["step"], rows[args.warmup - 1]["seconds"]), (rows[-1]["step"], rows[-1]["seconds"])  # fmt: skip
    return (s1 - s0) * args.batch_size / (t1 - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over the processes)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nproc:
            rates[n] = run(n, args, Path(tmp) / f"n{n}")
            print(f"{n} process(es): {rates[n]:.1f} samples/s")
    base = rates[min(rates)]
    entries = [Entry(name=f"depth-sr train, MSG-Net x4, global batch {args.batch_size} crops of {args.crop}, {n} process(es)",
                     metric="samples/s", value=round(r, 2), baseline=f"{min(rates)} process(es)",
                     baseline_value=round(base, 2), ratio=round(r / base, 3), hardware=hardware(), date=today(),
                     command=command_line())
               for n, r in rates.items()]  # fmt: skip
    write_results(entries, args.json, "depth-sr: data-parallel throughput")


if __name__ == "__main__":
    main()
