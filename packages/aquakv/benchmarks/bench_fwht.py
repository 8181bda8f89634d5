"""GPU benchmark and accuracy check of the Triton FWHT (aquakv.kernels.hadamard).

Usage: python packages/aquakv/benchmarks/bench_fwht.py [--json $OUT/fwht.json]
(``--json`` also writes a Markdown table next to the file: never point it at docs/benchmarks/aquakv.json.)

Checks every size 2..2^15 in fp32/fp16/bf16 against a float64 reference on fresh random
inputs, then times the kernel on ~2^30 elements per size against the torch butterfly reference
on the same GPU, and reports the fraction of the measured device-copy bandwidth reached.
"""

import argparse
import sys

import torch

from aquakv.kernels.hadamard import fwht_torch, fwht_triton
from papercore.bench import (
    Entry,
    command_line,
    copy_bandwidth_gbs,
    cuda_time_ms,
    hardware,
    today,
    write_results,
)
from papercore.testing import rel_error

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def check_accuracy() -> None:
    worst = {}
    for dtype in TOL:
        for k in range(1, 16):
            n = 1 << k
            x = torch.randn(max(4, 4096 // n * 4), n, device="cuda").to(dtype)
            ref = fwht_torch(x.double(), normalize=True)
            out = torch.full_like(x, float("nan"))  # poison: every element must be written
            out.copy_(fwht_triton(x, normalize=True))
            err = rel_error(out, ref)
            worst[dtype] = max(worst.get(dtype, 0.0), err)
            if not err <= TOL[dtype]:
                sys.exit(f"accuracy FAILED: n={n} {dtype}: relative error {err:.2e} > {TOL[dtype]:.0e}")
    print("accuracy OK, worst relative error vs float64:", {str(d): f"{e:.1e}" for d, e in worst.items()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--elements", type=int, default=1 << 30)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_fwht.py needs a CUDA GPU")
    check_accuracy()
    copy_gbs = copy_bandwidth_gbs()
    print(f"device copy bandwidth: {copy_gbs:.0f} GB/s (read + write)")
    hw, date, cmd = hardware(), today(), command_line()
    entries = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for n in (128, 1024, 4096, 16384):
            rows = args.elements // n
            x = torch.randn(rows, n, device="cuda", dtype=dtype)
            nbytes = 2 * x.numel() * x.element_size()
            ms = cuda_time_ms(lambda i, x=x: fwht_triton(x, True), warmup=5, rep=30)
            ms_ref = cuda_time_ms(lambda i, x=x: fwht_torch(x, True), warmup=2, rep=5)
            gbs = nbytes / ms / 1e6
            name = f"fwht {rows}x{n} {str(dtype).removeprefix('torch.')}"
            entries.append(
                Entry(name, "time_ms", ms, "torch butterfly reference", ms_ref, ms_ref / ms, hw, date, cmd)
            )
            entries.append(
                Entry(name, "GB/s", gbs, "device copy GB/s", copy_gbs, gbs / copy_gbs, hw, date, cmd)
            )
            x = None
            torch.cuda.empty_cache()
    write_results(entries, args.json, "aquakv FWHT")


if __name__ == "__main__":
    main()
