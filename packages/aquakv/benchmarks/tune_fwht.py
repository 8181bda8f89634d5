"""Sweep the FWHT launch settings (num_warps, programs per SM, pipelining stages) on a GPU.

Usage: python packages/aquakv/benchmarks/tune_fwht.py [--elements 268435456]
Prints GB/s for each setting and the best per (n, dtype); the winners go into aquakv.kernels.hadamard.TUNING.
"""

import argparse
import itertools

import torch

from aquakv.kernels import hadamard as F
from papercore.bench import copy_bandwidth_gbs, cuda_time_ms
from papercore.testing import rel_error

ap = argparse.ArgumentParser()
ap.add_argument("--elements", type=int, default=1 << 28)
ap.add_argument(
    "--sizes", type=int, nargs="+", default=[16, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
)
ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
ap.add_argument("--fp32-precisions", nargs="+", default=["tf32x3", "tf32x2"])
ap.add_argument("--warps", type=int, nargs="+", default=[2, 4, 8])
ap.add_argument("--per-sm", type=int, nargs="+", default=[2, 8])
ap.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3])
args = ap.parse_args()
copy = copy_bandwidth_gbs()
print(f"copy {copy:.0f} GB/s")
best = {}
for n, dtype in itertools.product(args.sizes, [getattr(torch, d) for d in args.dtypes]):
    x = torch.randn(args.elements // n, n, device="cuda", dtype=dtype)
    ref = F.fwht_torch(x[:64].double(), True)
    key = (n, x.element_size())
    precisions = args.fp32_precisions if dtype == torch.float32 else ["-"]
    for warps, per_sm, stages, fp32 in itertools.product(args.warps, args.per_sm, args.stages, precisions):
        F.TUNING[key] = (warps, per_sm, stages)
        F.FP32_PRECISION = fp32 if fp32 != "-" else "tf32x3"
        prec = f"stages={stages} {fp32}"
        try:
            err = rel_error(F.fwht_triton(x[:64], True), ref)
            ms = cuda_time_ms(lambda i, x=x: F.fwht_triton(x, True), warmup=3, rep=15)
        except Exception as e:  # e.g. out of shared memory / registers for this setting
            print(f"n={n} {dtype} warps={warps} per_sm={per_sm} {prec}: failed {type(e).__name__}")
            continue
        gbs = 2 * x.numel() * x.element_size() / ms / 1e6
        if gbs > best.get((n, str(dtype)), (0,))[0]:
            best[(n, str(dtype))] = (gbs, warps, per_sm, prec, err)
        print(
            f"n={n:<6} {str(dtype):<15} warps={warps} per_sm={per_sm:<2} {prec:<6} {gbs:7.0f} GB/s "
            f"({gbs / copy:.2f} of copy) err {err:.1e}",
            flush=True,
        )
    F.TUNING.pop(key, None)
print("\nbest per (n, dtype):")
for (n, d), (gbs, w, p, prec, err) in sorted(best.items()):
    print(f"  n={n:<6} {d:<15} {gbs:7.0f} GB/s ({gbs / copy:.2f}) warps={w} per_sm={p} {prec} err {err:.1e}")
