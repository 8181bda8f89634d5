"""End-to-end batch-1 decode speed of a Llama-2-7B-shaped model with 3-bit SpQR weights against fp16.

Usage: python packages/spqr/benchmarks/bench_decode.py [--outliers 0.01] [--context 256] [--json PATH]

Both sides run the same gpt-fast-style decoder (``papercore.llm.bench.decode_step_ms``: 32 layers,
hidden 4096, MLP 11008, static KV cache, SDPA, fp16 LM head) captured in one CUDA graph, so
Python and launch overhead are excluded from both; only the seven projections per layer differ:
fp16 ``nn.Linear`` against ``spqr.QuantizedLinear`` (3-bit, groups of 16, 3-bit statistics in
groups of 16, random codes and ``--outliers`` share of random fp16 outliers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.llm.bench import LLAMA2_7B, decode_step_ms, dense_linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_matvec import make_layer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outliers", type=float, default=0.01)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_decode.py needs a CUDA GPU")
    torch.manual_seed(0)
    base_ms = decode_step_ms(dense_linear, LLAMA2_7B, context=args.context)
    print(f"fp16: {base_ms:.3f} ms/token = {1e3 / base_ms:.1f} tokens/s")
    ms = decode_step_ms(lambda i, o: make_layer(i, o, args.outliers), LLAMA2_7B, context=args.context)
    print(f"spqr w3: {ms:.3f} ms/token = {1e3 / ms:.1f} tokens/s, x{base_ms / ms:.2f} vs fp16")
    entry = Entry(
        f"decode Llama-2-7B shape batch 1 ctx {args.context}, spqr w3 g16 qq3 {args.outliers:.0%} outliers (CUDA graph)",
        "tokens/s",
        1e3 / ms,
        "fp16 nn.Linear, same decoder",
        1e3 / base_ms,
        base_ms / ms,
        hardware(),
        today(),
        command_line(),
    )
    write_results([entry], args.json, "spqr decode")


if __name__ == "__main__":
    main()
