"""End-to-end batch-1 decode speed of a Llama-2-7B-shaped model with AQLM weights against fp16.

Usage: python packages/aqlm/benchmarks/bench_decode.py [--schemes 2x8g8,1x16g8,1x8g8] [--context 256] [--json PATH]

Both sides run the same gpt-fast-style decoder (``papercore.llm.bench.decode_step_ms``: 32 layers,
hidden 4096, MLP 11008, static KV cache, SDPA, fp16 LM head), captured in one CUDA graph so
Python and launch overhead are excluded from both; only the seven projections per layer differ
(fp16 ``nn.Linear`` against ``aqlm.QuantizedLinear`` with random codes, which is what
``QuantizedLinear.forward`` dispatches to at one token). Reports tokens/s and the speed-up.
"""

from __future__ import annotations

import argparse
import sys

import torch

from aqlm import AQLMConfig
from aqlm.quantized_linear import QuantizedLinear
from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.llm.bench import LLAMA2_7B, decode_step_ms, dense_linear


def aqlm_linear(scheme: str):
    cfg = AQLMConfig.from_scheme(scheme)
    m, b, g = cfg.num_codebooks, cfg.nbits_per_codebook, cfg.in_group_size

    def make(i: int, o: int) -> torch.nn.Module:
        codes = torch.randint(0, 2**b, (o, i // g, m), device="cuda")
        books = torch.randn(m, 2**b, 1, g, device="cuda", dtype=torch.float16) / (m * i) ** 0.5
        scales = torch.ones(o, 1, 1, 1, device="cuda", dtype=torch.float16)
        return QuantizedLinear.from_parts(codes, books, scales, None).requires_grad_(False)

    return make


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemes", default="2x8g8,1x16g8,1x8g8")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_decode.py needs a CUDA GPU")
    torch.manual_seed(0)
    base_ms = decode_step_ms(dense_linear, LLAMA2_7B, context=args.context)
    print(f"fp16: {base_ms:.3f} ms/token = {1e3 / base_ms:.1f} tokens/s")
    entries = []
    for scheme in args.schemes.split(","):
        try:
            ms = decode_step_ms(aqlm_linear(scheme), LLAMA2_7B, context=args.context)
        except Exception as e:  # report and go on with the other schemes
            print(f"{scheme}: FAILED {type(e).__name__}: {e}")
            continue
        print(f"aqlm {scheme}: {ms:.3f} ms/token = {1e3 / ms:.1f} tokens/s, x{base_ms / ms:.2f} vs fp16")
        entries.append(
            Entry(
                f"decode Llama-2-7B shape batch 1 ctx {args.context}, aqlm {scheme} (CUDA graph)",
                "tokens/s",
                1e3 / ms,
                "fp16 nn.Linear, same decoder",
                1e3 / base_ms,
                base_ms / ms,
                hardware(),
                today(),
                command_line(),
            )
        )
    write_results(entries, args.json, "aqlm decode")


if __name__ == "__main__":
    main()
