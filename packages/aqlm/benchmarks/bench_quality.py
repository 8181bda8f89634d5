"""Quality of AQLM against RTN and GPTQ at matched bits, and the effect of each fine-tuning stage.

Usage: python packages/aqlm/benchmarks/bench_quality.py [--model zoo:small] [--json PATH]

Held-out perplexity (standard-library test split) of: the original model; RTN and GPTQ (from the
`spqr` package, when installed) at 2 and 3 bits with fp16 group statistics; AQLM at about 2 and 3
bits (codebooks and scales counted) without fine-tuning, with block fine-tuning, and with block +
end-to-end fine-tuning. Runs on a GPU or (slowly, for `zoo:tiny`) on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from aqlm import AQLMConfig, DistillConfig
from aqlm.finetune import distill_
from aqlm.quantize import model_bits, quantize_
from papercore.bench import command_line, hardware, today
from papercore.llm import zoo
from papercore.llm.calib import CalibConfig, run_calibration
from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
from papercore.llm.metrics import perplexity


def linear_bits(model) -> float:
    return model_bits(model)["quantized_linears_bits_per_parameter"]


def scalar_quantize_(model, calib, method: str, wbits: int, groupsize: int, device) -> float:
    """RTN or GPTQ (spqr engine) on every decoder linear; returns bits per parameter (fp16 scale + zero per group)."""
    if method == "gptq":
        from spqr.config import SpQRConfig
        from spqr.engine import quantize_weight

        cfg = SpQRConfig(
            method="gptq",
            wbits=wbits,
            groupsize=groupsize,
            qq_scale_bits=16,
            qq_zero_bits=16,
            outlier_threshold=float("inf"),
            permutation_order="act_order",
        )

        def cb(ctx):
            for name, lin in ctx.linears.items():
                res = quantize_weight(lin.weight.detach().float(), ctx.xtx[name], cfg)
                lin.weight.data = res.weight.to(lin.weight.dtype)

        run_calibration(model, calib, cb, CalibConfig(device=device, progress=False))
    else:
        for name, lin in model.named_modules():
            if isinstance(lin, torch.nn.Linear) and ".layers." in name:
                w = lin.weight.data.float().view(lin.out_features, -1, groupsize)
                lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
                scale = (hi - lo).clamp_min(1e-8) / (2**wbits - 1)
                lin.weight.data = (
                    (torch.round((w - lo) / scale) * scale + lo).view_as(lin.weight).to(lin.weight.dtype)
                )
    return wbits + 32 / groupsize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:small")
    ap.add_argument("--nsamples", type=int, default=256)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--schemes", nargs="+", default=["2x8g8", "3x8g8"])
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--e2e-epochs", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = zoo.load(args.model.removeprefix("zoo:"), device=device)
    model = model.to(device)
    calib = get_calibration_data("stdlib", tok, args.nsamples, args.seqlen, seed=0)
    distill_data = get_calibration_data("stdlib", tok, args.nsamples, args.seqlen, seed=1)
    test = eval_windows(get_eval_stream("stdlib", tok), args.seqlen)

    def ppl(m):
        return perplexity(m, test, batch_size=8, device=device, progress=False)

    class Rows(list):  # print each result as it comes, so a run cut short still reports
        def append(self, row):
            print(f"  {row[0]}: {row[1]:.3f} bits, perplexity {row[2]:.3f}, {row[3]:.0f} s", flush=True)
            super().append(row)

    rows = Rows()
    rows.append(("original (fp32 weights)", 32.0, ppl(model), 0.0))
    for method in ("rtn", "gptq"):
        for wbits, group in ((2, 128), (3, 128), (2, 32), (3, 32)):
            m = copy.deepcopy(model)
            t0 = time.perf_counter()
            try:
                bits = scalar_quantize_(m, calib, method, wbits, group, device)
            except ImportError:
                print("spqr is not installed: GPTQ rows skipped")
                break
            rows.append((f"{method.upper()} {wbits}-bit g{group}", bits, ppl(m), time.perf_counter() - t0))
    for k, scheme in enumerate(args.schemes):
        base = AQLMConfig.from_scheme(scheme, max_epochs=args.max_epochs)
        variants = [("", base)]
        if k == 0:  # the fine-tuning stages are reported for the first scheme
            ft = {
                **base.to_dict(),
                "finetune_max_epochs": args.finetune_epochs,
                "finetune_lr": 1e-4,
                "finetune_batch_size": 1,  # one step per sequence, as the recorded results were measured
                "val_size": max(1, args.nsamples // 8),
            }
            variants.append((" + block FT", AQLMConfig.from_dict(ft)))
        for label, cfg in variants:
            m = copy.deepcopy(model)
            t0 = time.perf_counter()
            quantize_(m, cfg, calib, progress=False, device=device)
            rows.append((f"AQLM {scheme}{label}", linear_bits(m), ppl(m), time.perf_counter() - t0))
        if k > 0:
            continue
        t0 = time.perf_counter()
        e2e = DistillConfig(epochs=args.e2e_epochs, lr=1e-4, batch_size=8)
        distill_(m, model, distill_data, e2e, progress=False)
        rows.append(
            (f"AQLM {scheme} + block FT + end-to-end FT", linear_bits(m), ppl(m), time.perf_counter() - t0)
        )
    print(f"{args.model} on {hardware()}; perplexity on the stdlib test split, windows of {args.seqlen}")
    print("| method | bits per parameter (quantized linears) | perplexity | seconds |\n|---|---|---|---|")
    for name, bits, p, s in rows:
        print(f"| {name} | {bits:.3f} | {p:.3f} | {s:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "model": args.model,
                    "rows": rows,
                    "hardware": hardware(),
                    "date": today(),
                    "command": command_line(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
