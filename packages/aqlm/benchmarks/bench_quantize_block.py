"""Quantization time of one Llama-2-7B-shaped decoder block (GPU).

Usage: python packages/aqlm/benchmarks/bench_quantize_block.py [--scheme 1x16g8] [--nsamples 1024] [--seqlen 4096]

A one-block Llama with Llama-2-7B shapes (hidden 4096, MLP 11008, 32 heads) and random weights;
calibration inputs are random token ids (random activations: fine for timing, not for quality).
The whole pipeline is timed: capturing inputs, XᵀX accumulation (float64), the AQ engine on the
seven linears, and the block's output recomputation. Prints the time and each layer's relative MSE.
"""

import argparse
import json
import logging
import sys
import time

import torch

from aqlm import AQLMConfig
from aqlm.quantize import quantize_
from papercore.bench import hardware, today


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scheme", default="1x16g8")
    ap.add_argument("--nsamples", type=int, default=1024)
    ap.add_argument("--seqlen", type=int, default=4096)
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument(
        "--init-max-points-per-centroid",
        type=int,
        default=None,
        help="k-means on a sample (default: all groups)",
    )
    ap.add_argument("--offload", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    # Each linear's time and loss as it finishes: a run stopped by a time limit keeps the split.
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms  %(message)s")
    if not torch.cuda.is_available():
        sys.exit("bench_quantize_block.py needs a CUDA GPU")
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=1,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=args.seqlen,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).cuda().eval()
    calib = torch.randint(0, 32000, (args.nsamples, args.seqlen))
    config = AQLMConfig.from_scheme(
        args.scheme,
        max_epochs=args.max_epochs,
        init_max_points_per_centroid=args.init_max_points_per_centroid,
    )
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    report = quantize_(model, config, calib, offload=args.offload, progress=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    rows = [
        (layer.name.split(".", 3)[-1], layer.relative_mse, layer.epochs, layer.seconds)
        for layer in report.layers
    ]
    print(
        f"{args.scheme}, {args.nsamples}x{args.seqlen} tokens: {seconds:.1f} s for the block on {hardware()}"
    )
    for name, mse, epochs, sec in rows:
        print(f"  {name:<22} relative MSE {mse:.4f}  epochs {epochs:3d}  {sec:6.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "scheme": args.scheme,
                    "nsamples": args.nsamples,
                    "seqlen": args.seqlen,
                    "init_max_points_per_centroid": args.init_max_points_per_centroid,
                    "seconds": seconds,
                    "layers": rows,
                    "hardware": hardware(),
                    "date": today(),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
