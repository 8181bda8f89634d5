"""GPU benchmark of the AQLM kernels (aqlm.kernels.aqlm_linear) against fp16 F.linear (cuBLAS).

Usage: python packages/aqlm/benchmarks/bench_matvec.py [--json docs/benchmarks/aqlm.json]
       [--shapes 7b,13b,70b] [--schemes 2x8g8,1x16g8,1x8g8] [--sweep SWEEP.json]

1. Checks every path (1, 2, 4, 7 and 64 tokens: GEMV, or dequantize + GEMM past the kernel's
   token limit) in fp16 and bf16 against a float64 reference on fresh random inputs, with
   poisoned output memory; a failure aborts the run.
2. Times batch-1 matvecs at the Llama-2 gate_proj shapes (7B 4096x11008, 13B 5120x13824,
   70B 8192x28672) for each scheme against fp16 F.linear on the same GPU. Both sides are captured
   in CUDA graphs (launch overhead excluded equally) and rotate among enough weight copies to
   exceed the L2 cache several times over. Reports the median time (and IQR), the speed-up and
   the achieved GB/s (codes + codebooks + scales + x + y) against the measured copy bandwidth.
3. 2, 4, 8 and 64 tokens at the first shape, against F.linear, with the other path's time too
   (GEMV vs dequantize + cuBLAS GEMM), which is how the token limits were chosen.

``--sweep PATH`` instead times the launch settings of aqlm.kernels.triton_gemv / triton_dequant
and writes the raw numbers to PATH (how TUNING in those modules was chosen).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from functools import partial

import torch
import torch.nn.functional as F

from aqlm.kernels import aqlm_linear, dequantize, select_path
from aqlm.kernels.triton_dequant import DequantConfig, triton_dequantize
from aqlm.kernels.triton_gemv import GemvConfig, triton_gemv
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
from papercore.testing import rel_error

SHAPES = {"7b": (4096, 11008), "13b": (5120, 13824), "70b": (8192, 28672)}  # gate_proj in x out
SCHEMES = {"2x8g8": (2, 8, 8), "1x16g8": (1, 16, 8), "1x8g8": (1, 8, 8)}
TOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2}
DEVICE = "cuda"
ROTATE_BYTES = 256 << 20  # > 4x the H200's L2 for both sides


def make_layer(in_f: int, out_f: int, scheme: str, dtype=torch.float16, device=None):
    device = device or DEVICE
    m, b, g = SCHEMES[scheme]
    # uniform unsigned codes stored signed are uniform over the signed range
    lo, hi = -(1 << (b - 1)), 1 << (b - 1)
    codes = torch.randint(
        lo, hi, (out_f, in_f // g, m), device=device, dtype=torch.int16 if b > 8 else torch.int8
    )
    codebooks = (torch.randn(m, 1 << b, 1, g, device=device) / (g * m) ** 0.5).to(dtype)
    scales = (torch.rand(out_f, 1, 1, 1, device=device) + 0.5).to(dtype)
    return codes, codebooks, scales


def layer_bytes(layer) -> int:
    return nbytes(layer)


def poison() -> None:
    """Fill free cached memory with NaN, so outputs a kernel forgets to write show up."""
    junk = torch.full((64 << 20,), float("nan"), device=DEVICE)
    del junk


def check_accuracy() -> None:
    worst: dict[str, float] = {}
    for scheme in SCHEMES:
        for dtype in TOL:
            layer = make_layer(1024, 768, scheme, dtype)
            bias = torch.randn(768, device=DEVICE, dtype=dtype)
            w64 = dequantize(layer[0], layer[1].double(), layer[2].double())
            for tokens, b in ((1, bias), (2, None), (4, bias), (7, bias), (64, bias)):
                x = torch.randn(tokens, 1024, device=DEVICE, dtype=dtype)
                poison()
                y = aqlm_linear(x, *layer, b)
                ref = F.linear(x.double(), w64, None if b is None else b.double())
                err = rel_error(y, ref)
                key = f"{select_path(x, layer[0], layer[1])} {str(dtype)[6:]}"
                worst[key] = max(worst.get(key, 0.0), err)
                if not err <= TOL[dtype]:
                    sys.exit(
                        f"accuracy FAILED: {scheme} {dtype} tokens={tokens}: {err:.2e} > {TOL[dtype]:.0e}"
                    )
    print("accuracy OK, worst relative error vs float64:", {k: f"{v:.1e}" for k, v in sorted(worst.items())})


def dequant_gemm(x, codes, codebooks, scales):
    return F.linear(x, triton_dequantize(codes, codebooks, scales, dtype=x.dtype))


def rotated(make, *args, **kwargs) -> list:
    """Enough independent copies of ``make(*args, **kwargs)`` (a tensor or a tuple) to exceed ROTATE_BYTES."""
    return rotating_inputs(lambda: make(*args, **kwargs), ROTATE_BYTES)


def fp16_calls(in_f, out_f, x, dtype=torch.float16):
    ws = rotated(torch.randn, out_f, in_f, device=DEVICE, dtype=dtype)
    return [partial(F.linear, x, w) for w in ws], ws


def run_benchmark(args) -> list[Entry]:
    copy_gbs = copy_bandwidth_gbs()
    print(f"device copy bandwidth: {copy_gbs:.0f} GB/s (read + write)")
    hw, date, cmd = hardware(), today(), command_line()
    entries = []

    def add(name, metric, value, baseline, baseline_value, ratio):
        entries.append(Entry(name, metric, value, baseline, baseline_value, ratio, hw, date, cmd))

    for shape in args.shapes:
        in_f, out_f = SHAPES[shape]
        x = torch.randn(1, in_f, device=DEVICE, dtype=torch.float16)
        calls, ws = fp16_calls(in_f, out_f, x)
        base_us, base_iqr = graph_time_us(calls)
        base_gbs = (out_f * in_f + in_f + out_f) * 2 / base_us / 1e3
        print(
            f"{shape} fp16 F.linear: {base_us:.2f} us (IQR {base_iqr:.2f}), {base_gbs:.0f} GB/s, {len(ws)} copies"
        )
        del calls, ws
        add(
            f"fp16 F.linear {in_f}x{out_f} batch 1",
            "GB/s",
            base_gbs,
            "device copy GB/s",
            copy_gbs,
            base_gbs / copy_gbs,
        )
        for scheme in args.schemes:
            layers = rotated(make_layer, in_f, out_f, scheme)
            us, iqr = graph_time_us([partial(aqlm_linear, x, *lay) for lay in layers])
            gbs = (layer_bytes(layers[0]) + (in_f + out_f) * 2) / us / 1e3
            path = select_path(x, *layers[0][:2])
            print(f"{shape} {scheme} [{path}]: {us:.2f} us (IQR {iqr:.2f}), x{base_us / us:.2f} vs fp16, "
                  f"{gbs:.0f} GB/s = {gbs / copy_gbs:.2f} of copy, {len(layers)} copies")  # fmt: skip
            name = f"aqlm {scheme} matvec {in_f}x{out_f} fp16 batch 1 ({path})"
            add(name, "time_ms", us / 1e3, "fp16 F.linear (cuBLAS)", base_us / 1e3, base_us / us)
            add(name, "GB/s", gbs, "device copy GB/s", copy_gbs, gbs / copy_gbs)
            del layers
            torch.cuda.empty_cache()
    # a few tokens (GEMV, or dequantize + GEMM past the kernel's token limit) and 64 tokens
    in_f, out_f = SHAPES[args.shapes[0]]
    for tokens in (2, 4, 8, 64):
        x = torch.randn(tokens, in_f, device=DEVICE, dtype=torch.float16)
        calls, ws = fp16_calls(in_f, out_f, x)
        base_us, _ = graph_time_us(calls, min_calls=16)
        del calls, ws
        for scheme in args.schemes:
            layers = rotated(make_layer, in_f, out_f, scheme)
            path = select_path(x, *layers[0][:2])
            us, _ = graph_time_us([partial(aqlm_linear, x, *lay) for lay in layers], min_calls=16)
            line = (
                f"{tokens} tokens {in_f}x{out_f} {scheme} [{path}]: {us:.2f} us vs F.linear {base_us:.2f} us"
            )
            if tokens <= 8:  # the other path, for the record
                other = triton_gemv if path == "triton_dequant" else dequant_gemm
                other_us, _ = graph_time_us([partial(other, x, *lay) for lay in layers], min_calls=16)
                line += f"; {'GEMV' if path == 'triton_dequant' else 'dequant+GEMM'} {other_us:.2f} us"
            print(line)
            name = f"aqlm {scheme} linear {in_f}x{out_f} fp16 {tokens} tokens ({path})"
            add(name, "time_ms", us / 1e3, "fp16 F.linear (cuBLAS)", base_us / 1e3, base_us / us)
            del layers
            torch.cuda.empty_cache()
    return entries


# ------------------------------------------------------------------------------------------ sweep
def sweep(args) -> None:
    results = []
    t0 = time.time()

    def record(**kw):
        results.append(kw)
        print(json.dumps(kw), flush=True)
        with open(args.sweep, "w") as f:  # rewritten each time: a timed-out run keeps its numbers
            json.dump(results, f, indent=1)

    def time_cfgs(shape, tokens, scheme, kernel, cfgs, pps_list=(1, 2, 4)):
        in_f, out_f = SHAPES[shape]
        x = torch.randn(tokens, in_f, device=DEVICE, dtype=torch.float16)
        layers = rotated(make_layer, in_f, out_f, scheme)
        ref = F.linear(x.float(), dequantize(*layers[0]).float())
        for cfg in cfgs:
            for pps in pps_list:
                c = replace(cfg, programs_per_sm=pps)
                try:
                    err = rel_error(triton_gemv(x, *layers[0], kernel=kernel, config=c), ref)
                    calls = [partial(triton_gemv, x, *lay, kernel=kernel, config=c) for lay in layers]
                    us = graph_time_us(calls, reps=15)[0]
                except Exception as e:  # e.g. a config that needs too much shared memory
                    us, err = f"error: {type(e).__name__}: {str(e)[:160]}", None
                record(shape=shape, tokens=tokens, scheme=scheme, kernel=kernel, cfg=asdict(c), us=us, err=err,
                       t=round(time.time() - t0))  # fmt: skip
        del layers
        torch.cuda.empty_cache()

    for shape in args.shapes:
        for tokens in (1, 2, 8):
            in_f, out_f = SHAPES[shape]
            calls, ws = fp16_calls(in_f, out_f, torch.randn(tokens, in_f, device=DEVICE, dtype=torch.float16))
            record(shape=shape, tokens=tokens, what="fp16", us=graph_time_us(calls, reps=15)[0])
            del calls, ws
    lut = [GemvConfig(256, 32, 8), GemvConfig(128, 32, 4), GemvConfig(256, 16, 8), GemvConfig(512, 32, 16),
           GemvConfig(64, 32, 2)]  # block_i: codes per row and step  # fmt: skip
    direct = [GemvConfig(64, 16, 4, cache=".cg"), GemvConfig(64, 16, 4), GemvConfig(128, 16, 4, cache=".cg"),
              GemvConfig(32, 32, 4, cache=".cg"), GemvConfig(128, 32, 8, cache=".cg")]  # fmt: skip
    for shape in args.shapes:
        time_cfgs(shape, 1, "2x8g8", "lut", lut, (2, 3, 5))
        time_cfgs(shape, 1, "1x8g8", "lut", lut[:3], (2, 3, 5))
        time_cfgs(shape, 1, "1x16g8", "1x16", direct)
    time_cfgs(args.shapes[0], 1, "2x8g8", "direct", direct[:2], (2,))
    for tokens in (2, 4):
        time_cfgs(args.shapes[0], tokens, "2x8g8", "lut", lut[:2], (2, 3, 5))
    for tokens in (2, 8):
        time_cfgs(
            args.shapes[0],
            tokens,
            "1x16g8",
            "1x16",
            [GemvConfig(64, 8, 4, cache=".cg"), GemvConfig(128, 8, 4)],
            (1, 2),
        )
    in_f, out_f = SHAPES[args.shapes[0]]
    for scheme in ("2x8g8", "1x16g8"):
        layers = rotated(make_layer, in_f, out_f, scheme)
        for cfg in [DequantConfig(32, 32), DequantConfig(64, 32), DequantConfig(16, 64), DequantConfig(128, 16, 8),
                    DequantConfig(32, 32, cache=".cg")]:  # fmt: skip
            us = graph_time_us(
                [partial(triton_dequantize, *lay, config=cfg) for lay in layers], min_calls=16, reps=10
            )[0]
            record(shape=args.shapes[0], scheme=scheme, kernel="dequant", cfg=asdict(cfg), us=us,
                   write_gbs=out_f * in_f * 2 / us / 1e3)  # fmt: skip
        del layers
    print(f"sweep took {time.time() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write papercore.bench entries here (+ a .md table)")
    ap.add_argument("--shapes", default="7b,13b,70b")
    ap.add_argument("--schemes", default="2x8g8,1x16g8,1x8g8")
    ap.add_argument("--sweep", default=None, help="time launch settings instead; raw results to this JSON")
    ap.add_argument("--skip-check", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_matvec.py needs a CUDA GPU")
    args.shapes = args.shapes.split(",")
    args.schemes = args.schemes.split(",")
    torch.manual_seed(0)
    if not args.skip_check:
        t0 = time.time()
        check_accuracy()
        print(f"check took {time.time() - t0:.0f} s")
    if args.sweep:
        sweep(args)
        return
    entries = run_benchmark(args)
    write_results(entries, args.json, "aqlm kernels")


if __name__ == "__main__":
    main()
