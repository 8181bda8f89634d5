"""End-to-end fine-tuning with and without discrete code updates (PV-tuning's V step).

Usage: python packages/aqlm/benchmarks/bench_code_updates.py [--model zoo:tiny] [--scheme 2x8g8]
       [--code-lr 1e-3 1e-2] [--code-update-every 1 4] [--code-residual-decay 1 0] [--json PATH]

Quantizes the model once (AQLM, no block fine-tuning), then runs `distill_` from that same start,
with the same data, seed and P-step settings, once with codes frozen and once per (code_residual_decay,
code_lr, code_update_every) with code updates (Adam on the straight-through dense weights, beam search
re-encoding, at most --max-code-change of the code groups per update). Reports held-out perplexity
(standard-library test split) before and after each run. On a GPU use --model zoo:small.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time

import torch

from aqlm import AQLMConfig, DistillConfig, distill_, model_bits, quantize_
from papercore.bench import hardware, today
from papercore.llm import zoo
from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
from papercore.llm.metrics import perplexity


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:tiny")
    ap.add_argument("--scheme", default="2x8g8")
    ap.add_argument("--nsamples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--distill-samples", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--code-lr", type=float, nargs="+", default=[1e-3, 1e-2])
    ap.add_argument("--code-update-every", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--max-code-change", type=float, default=0.01)
    ap.add_argument("--code-beam-size", type=int, default=5)
    ap.add_argument("--code-residual-decay", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--eval-windows", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model, tok = zoo.load(args.model.removeprefix("zoo:"), device=device)
    model = model.to(device)
    calib = get_calibration_data("stdlib", tok, args.nsamples, args.seqlen, seed=0, max_chars=4_000_000)
    data = get_calibration_data("stdlib", tok, args.distill_samples, args.seqlen, seed=1, max_chars=4_000_000)
    test = eval_windows(get_eval_stream("stdlib", tok), args.seqlen, max_windows=args.eval_windows)

    def ppl(m) -> float:
        return perplexity(m, test, batch_size=8, device=device, progress=False)

    original = ppl(model)
    q = copy.deepcopy(model)
    t0 = time.perf_counter()
    quantize_(q, AQLMConfig.from_scheme(args.scheme, max_epochs=args.max_epochs), calib, progress=False)
    start = ppl(q)
    bits = model_bits(q)["quantized_linears_bits_per_parameter"]
    print(
        f"{args.model} {args.scheme}: original {original:.3f}, quantized {start:.3f} "
        f"({bits:.3f} bits, {time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    runs = [("codes frozen", DistillConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size))]
    for decay in args.code_residual_decay:
        for code_lr in args.code_lr:
            for every in args.code_update_every:
                cfg = DistillConfig(
                    epochs=args.epochs,
                    lr=args.lr,
                    batch_size=args.batch_size,
                    code_update_every=every,
                    code_lr=code_lr,
                    max_code_change=args.max_code_change,
                    code_beam_size=args.code_beam_size,
                    code_residual_decay=decay,
                )
                label = f"code updates: code_lr {code_lr:g}, every {every} step(s), residual decay {decay:g}"
                runs.append((label, cfg))
    rows = []
    for label, cfg in runs:
        m = copy.deepcopy(q)
        t0 = time.perf_counter()
        res = distill_(m, model, data, cfg, progress=False, seed=0)
        seconds = time.perf_counter() - t0
        changed = sum(res.code_changes) if res.code_changes else 0.0
        row = {
            "run": label,
            "config": cfg.to_dict(),
            "perplexity_before": start,
            "perplexity_after": ppl(m),
            "code_groups_changed_total": changed,
            "seconds": seconds,
        }
        rows.append(row)
        print(
            f"  {label}: {start:.3f} -> {row['perplexity_after']:.3f} "
            f"(sum of per-update changed fractions {changed:.4f}, {seconds:.0f} s)",
            flush=True,
        )
    print(
        f"\n{args.model} {args.scheme} on {hardware()}; perplexity on the stdlib test split, "
        f"windows of {args.seqlen}; original {original:.3f}"
    )
    print("| end-to-end fine-tuning | perplexity before → after | seconds |\n|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['perplexity_before']:.3f} → {r['perplexity_after']:.3f} | {r['seconds']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "model": args.model,
                    "scheme": args.scheme,
                    "bits": bits,
                    "original": original,
                    "args": vars(args),
                    "rows": rows,
                    "hardware": hardware(),
                    "date": today(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
