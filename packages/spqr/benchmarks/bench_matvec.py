"""GPU benchmark of the SpQR kernels (spqr.kernels.spqr_linear) against fp16 F.linear (cuBLAS).

Usage: python packages/spqr/benchmarks/bench_matvec.py [--json docs/benchmarks/spqr.json]
       [--shapes 7b,13b,70b] [--tokens 1,16] [--outliers 0.01] [--skip-check]

1. Checks every path (1, 2, 3, 4, 7, 16 and 64 tokens; fp16 and bf16; with and without outliers)
   against a float64 reference of ``layer.dequantize()``; a failure aborts the run.
2. Times ``spqr_linear`` (what ``QuantizedLinear.forward`` calls) at the Llama-2 gate_proj shapes (7B 4096x11008, 13B 5120x13824, 70B 8192x28672),
   3-bit SpQR (groupsize 16, 3-bit statistics in groups of 16) with ~1% random outliers, for 1, 4
   and 16 tokens, against fp16 F.linear on the same GPU. Both sides are captured in CUDA graphs (launch
   overhead excluded equally) and rotate among enough weight copies to exceed the 60 MB L2 several
   times over. Reports the median time (and IQR), the speed-up and the achieved GB/s (every stored
   buffer + x + y) against the measured device copy bandwidth. At 16 tokens the other path
   (Triton dequantize + cuBLAS GEMM) is timed too, for the record.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F

from papercore.bench import (
    Entry,
    command_line,
    copy_bandwidth_gbs,
    graph_time_us,
    hardware,
    nbytes,
    rotating_inputs,
    today,
    write_results,
)
from papercore.kernels.packing import pack_bits
from papercore.testing import rel_error
from spqr.kernels import select_path, spqr_linear, triton_ops
from spqr.kernels.triton_ops import FastConfig, fast_gemv, fast_linear_dequant
from spqr.quantized_linear import QuantizedLinear, build_csr, index_dtype

SHAPES = {"7b": (4096, 11008), "13b": (5120, 13824), "70b": (8192, 28672)}  # gate_proj in x out
TOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2}
DEVICE = "cuda"
ROTATE_BYTES = 256 << 20  # > 4x the H200's 60 MB L2 for both sides
WBITS, GROUPSIZE, QQ_BITS, QQ_GROUPSIZE = 3, 16, 3, 16


@torch.no_grad()
def make_layer(in_f: int, out_f: int, outliers: float = 0.01, device=None) -> QuantizedLinear:
    """A 3-bit SpQR layer with random codes, statistics, permutation and ``outliers`` share of outliers."""
    device = device or DEVICE
    groups = in_f // GROUPSIZE
    mask = torch.rand(out_f, in_f, device=device) < outliers
    q = QuantizedLinear(in_f, out_f, wbits=WBITS, groupsize=GROUPSIZE, qq_scale_bits=QQ_BITS,
                        qq_zero_bits=QQ_BITS, qq_groupsize=QQ_GROUPSIZE, nnz=int(mask.sum()), bias=False,
                        device=device)  # fmt: skip
    codes = torch.randint(0, 2**WBITS, (out_f, in_f), device=device, dtype=torch.int32)
    q.codes.copy_(pack_bits(codes, WBITS, validate=False))
    q.perm.copy_(torch.randperm(in_f, device=device).to(q.perm.dtype))
    for stat, lo, hi in (("scale", 0.002, 0.01), ("zero", 0.0, 2.0**QQ_BITS)):
        c = torch.randint(0, 2**QQ_BITS, (out_f * groups,), device=device, dtype=torch.int32)
        getattr(q, f"{stat}_codes").copy_(pack_bits(c, QQ_BITS, validate=False))
        qs = torch.rand(out_f // QQ_GROUPSIZE, groups, device=device) * (hi - lo) / 8 + lo / 8
        getattr(q, f"{stat}_qq_scale").copy_(qs.half())
        getattr(q, f"{stat}_qq_zero").copy_(
            (torch.rand(out_f // QQ_GROUPSIZE, groups, device=device) * 2).half()
        )
    offsets, cols, vals = build_csr(
        mask, torch.randn(int(mask.sum()), device=device) * 0.1, index_dtype(in_f)
    )
    q.outlier_row_offsets.copy_(offsets)
    q.outlier_col_indices.copy_(cols)
    q.outlier_values.copy_(vals)
    return q.to_kernel_layout_()  # as loaded: the kernel layout replaces the stored buffers


def layer_bytes(layer: QuantizedLinear) -> int:
    return nbytes(layer)


def read_bytes(layer: QuantizedLinear) -> int:
    """Bytes the fast kernel reads: everything the layer holds in its kernel layout (codes, statistic
    codes, second-level statistics, permutation, outliers)."""
    return layer.nbytes


def sweep(shape: str, tokens: int, outliers: float) -> FastConfig:
    """Time the fast kernel's launch settings at one shape; return the fastest that is right."""
    in_f, out_f = SHAPES[shape]
    x = torch.randn(tokens, in_f, device=DEVICE, dtype=torch.float16)
    layers = rotated(make_layer, in_f, out_f, outliers)
    results = []
    for block_o, warps in ((64, 2), (128, 4), (256, 8), (256, 4)):
        for pps in (3, 5, 8):
            cfg = FastConfig(block_o, warps, programs_per_sm=pps)
            try:
                us, _ = graph_time_us([partial(fast_gemv, x, lay, None, config=cfg) for lay in layers])
            except Exception as e:  # a config that does not compile (registers, shared memory)
                print(f"  sweep {cfg}: {type(e).__name__}")
                continue
            results.append((us, cfg))
    results.sort(key=lambda r: r[0])
    for _, cfg in results:  # the fastest setting that is also right
        err = rel_error(
            fast_gemv(x, layers[0], None, config=cfg), F.linear(x.double(), layers[0].dequantize().double())
        )
        if err <= TOL[torch.float16]:
            break
        print(f"  sweep {cfg}: relative error {err:.1e}, skipped")
    for us, c in results[:5]:
        print(f"  sweep {shape} {tokens} tok: {c}: {us:.2f} us")
    del layers
    torch.cuda.empty_cache()
    return cfg


def poison() -> None:
    """Fill free cached memory with NaN, so outputs a kernel forgets to write show up."""
    junk = torch.full((64 << 20,), float("nan"), device=DEVICE)
    del junk


def check_accuracy() -> None:
    worst: dict[str, float] = {}
    for outliers in (0.0, 0.02):
        layer = make_layer(1024, 768, outliers)
        w64 = layer.dequantize().double()
        for dtype, tol in TOL.items():
            bias = torch.randn(768, device=DEVICE, dtype=dtype)
            for tokens, b in ((1, bias), (2, None), (3, bias), (4, bias), (7, bias), (16, bias), (64, bias)):
                x = torch.randn(tokens, 1024, device=DEVICE, dtype=dtype)
                poison()
                y = spqr_linear(x, layer, b)
                ref = F.linear(x.double(), w64, None if b is None else b.double())
                err = rel_error(y, ref)
                key = f"{select_path(x, layer)} {str(dtype)[6:]}"
                worst[key] = max(worst.get(key, 0.0), err)
                if not err <= tol:
                    sys.exit(
                        f"accuracy FAILED: outliers={outliers} {dtype} tokens={tokens}: {err:.2e} > {tol:.0e}"
                    )
    print("accuracy OK, worst relative error vs float64:", {k: f"{v:.1e}" for k, v in sorted(worst.items())})


def rotated(make, *args, **kwargs) -> list:
    """Enough independent copies of ``make(*args, **kwargs)`` (a layer or a tensor) to exceed ROTATE_BYTES."""
    return rotating_inputs(lambda: make(*args, **kwargs), ROTATE_BYTES)


def dequant_gemm(x, layer):
    return fast_linear_dequant(x, layer)


def run_benchmark(args) -> list[Entry]:
    copy_gbs = copy_bandwidth_gbs()
    print(f"device copy bandwidth: {copy_gbs:.0f} GB/s (read + write)")
    hw, date, cmd = hardware(), today(), command_line()
    entries = []

    def add(name, metric, value, baseline, baseline_value, ratio):
        entries.append(Entry(name, metric, value, baseline, baseline_value, ratio, hw, date, cmd))

    for shape in args.shapes:
        in_f, out_f = SHAPES[shape]
        for tokens in args.tokens:
            x = torch.randn(tokens, in_f, device=DEVICE, dtype=torch.float16)
            io_bytes = (tokens * (in_f + out_f)) * 2
            ws = rotated(torch.randn, out_f, in_f, device=DEVICE,
                         dtype=torch.float16)  # fmt: skip
            base_us, base_iqr = graph_time_us([partial(F.linear, x, w) for w in ws])
            base_gbs = (out_f * in_f * 2 + io_bytes) / base_us / 1e3
            print(
                f"{shape} {tokens} tok fp16 F.linear: {base_us:.2f} us (IQR {base_iqr:.2f}), {base_gbs:.0f} GB/s"
            )
            del ws
            add(f"fp16 F.linear {in_f}x{out_f} batch {tokens}", "GB/s", base_gbs, "device copy GB/s", copy_gbs,
                base_gbs / copy_gbs)  # fmt: skip
            layers = rotated(make_layer, in_f, out_f, args.outliers)
            path = select_path(x, layers[0])
            us, iqr = graph_time_us([partial(spqr_linear, x, lay) for lay in layers])
            gbs = (read_bytes(layers[0]) + io_bytes) / us / 1e3
            bpp = layers[0].bits_per_parameter
            line = (f"{shape} {tokens} tok spqr w3 ({bpp:.2f} bits/param, nnz {layers[0].nnz}) [{path}]: "
                    f"{us:.2f} us (IQR {iqr:.2f}), x{base_us / us:.2f} vs fp16, {gbs:.0f} GB/s = "
                    f"{gbs / copy_gbs:.2f} of copy, {len(layers)} copies")  # fmt: skip
            if tokens > 1 and path != "triton_dequant":
                other_us, _ = graph_time_us([partial(dequant_gemm, x, lay) for lay in layers], min_calls=16)
                line += f"; dequant+GEMM {other_us:.2f} us"
            print(line)
            name = f"spqr w3 {args.outliers:.0%} outliers {in_f}x{out_f} fp16 batch {tokens} ({path})"
            add(name, "time_ms", us / 1e3, "fp16 F.linear (cuBLAS)", base_us / 1e3, base_us / us)
            add(name, "GB/s", gbs, "device copy GB/s", copy_gbs, gbs / copy_gbs)
            del layers
            torch.cuda.empty_cache()
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write papercore.bench entries here (+ a .md table)")
    ap.add_argument("--shapes", default="7b,13b,70b")
    ap.add_argument("--tokens", default="1,4,16")
    ap.add_argument("--outliers", type=float, default=0.01, help="share of outlier weights")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="tune the fast kernel's launch settings first")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_matvec.py needs a CUDA GPU")
    args.shapes = args.shapes.split(",")
    args.tokens = [int(t) for t in args.tokens.split(",")]
    torch.manual_seed(0)
    if not args.skip_check:
        t0 = time.time()
        check_accuracy()
        print(f"check took {time.time() - t0:.0f} s")
    if args.sweep:
        best = sweep("7b", 1, args.outliers)
        print(f"best for 1 token: {best}")
        triton_ops.FAST_TUNING = best
    entries = run_benchmark(args)
    write_results(entries, args.json, "spqr kernels")


if __name__ == "__main__":
    main()
