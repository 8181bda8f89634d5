"""Perplexity against average bits for RTN, GPTQ and SpQR on a zoo model (GPU, or slowly CPU).

Usage: python packages/spqr/benchmarks/bench_quality.py [--model zoo:small] [--json PATH]

Held-out perplexity (standard-library test split, windows of --seqlen) of the original model and
of the model quantized with each preset (simulated weights: the dequantized SpQR weight written
back, which computes the same function as the stored format). Bits are the exact stored bits per
parameter of the quantized linears (codes, both levels of statistics, outliers at 32 bits each),
the paper's formula. Also reports the quantization time and the outlier share.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from papercore.bench import command_line, hardware, today
from papercore.llm import zoo
from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
from papercore.llm.metrics import perplexity
from spqr import SpQRConfig
from spqr.quantize import quantize_

RUNS = [
    ("RTN 4-bit g128", "rtn4", {}),
    ("RTN 3-bit g128", "rtn3", {}),
    ("RTN 4-bit g16", "rtn4", {"groupsize": 16}),
    ("GPTQ 4-bit g128", "gptq4", {}),
    ("GPTQ 3-bit g128", "gptq3", {}),
    ("GPTQ 3-bit g16", "gptq3", {"groupsize": 16}),
    ("SpQR w3 (no outliers)", "w3", {"outlier_threshold": float("inf")}),
    ("SpQR w3", "w3", {}),
    ("SpQR w3 tau 0.1", "w3", {"outlier_threshold": 0.1}),
    ("SpQR w4 (no outliers)", "w4", {"outlier_threshold": float("inf")}),
    ("SpQR w4", "w4", {}),
    ("SpQR w4 tau 0.1", "w4", {"outlier_threshold": 0.1}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:small")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--runs", default=None, help="comma-separated subset of the run labels")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = zoo.load(args.model.removeprefix("zoo:"), device=device)
    model = model.to(device)
    calib = get_calibration_data("stdlib", tok, args.nsamples, args.seqlen, seed=0)
    test = eval_windows(get_eval_stream("stdlib", tok), args.seqlen)

    def ppl(m):
        return perplexity(m, test, batch_size=8, device=device, progress=False)

    base = ppl(model)
    rows = [("original (fp32 weights)", 32.0, base, 0.0, 0.0)]
    print(f"original: perplexity {base:.3f}", flush=True)
    wanted = None if args.runs is None else set(args.runs.split(","))
    for label, preset, overrides in RUNS:
        if wanted is not None and label not in wanted:
            continue
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        report = quantize_(m, SpQRConfig.from_preset(preset, **overrides), calib, store=False, device=device,
                           progress=False)  # fmt: skip
        secs = time.perf_counter() - t0
        p = ppl(m)
        rows.append((label, report.bits_per_parameter, p, report.outlier_share, secs))
        print(f"  {label}: {report.bits_per_parameter:.3f} bits, outliers {report.outlier_share:.2%}, "
              f"perplexity {p:.3f} ({p / base - 1:+.2%}), {secs:.0f} s", flush=True)  # fmt: skip
        del m
    print(f"\n{args.model} on {hardware()}; perplexity on the stdlib test split, windows of {args.seqlen}")
    print("| method | bits per parameter | outlier share | perplexity | vs original | seconds |")
    print("|---|---|---|---|---|---|")
    for name, bits, p, share, s in rows:
        print(f"| {name} | {bits:.3f} | {share:.2%} | {p:.3f} | {p / base - 1:+.2%} | {s:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "rows": rows, "hardware": hardware(), "date": today(),
                       "command": command_line()}, f, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
