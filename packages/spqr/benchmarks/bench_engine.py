"""Time ``spqr.engine.quantize_weight`` on the seven linears of one Llama-2-7B block (GPU).

Synthetic weights (N(0, 0.02²) with 0.1% x10 outliers) and XᵀX from heavy-tailed random
activations; only the timing is meaningful, not the losses.

    python packages/spqr/benchmarks/bench_engine.py --presets w3 w4 gptq4 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spqr import SpQRConfig, quantize_weight

LLAMA2_7B_BLOCK = {  # name: (out_features, in_features)
    "q_proj": (4096, 4096),
    "k_proj": (4096, 4096),
    "v_proj": (4096, 4096),
    "o_proj": (4096, 4096),
    "gate_proj": (11008, 4096),
    "up_proj": (11008, 4096),
    "down_proj": (4096, 11008),
}


def synthetic_xtx(inp: int, tokens: int, device, gen) -> torch.Tensor:
    scale = torch.exp(1.5 * torch.randn(inp, generator=gen, device=device))  # a few loud features
    x = torch.randn(tokens, inp, generator=gen, device=device) * scale
    x64 = x.double()
    return x64.T @ x64 / tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["w3", "gptq4"])
    p.add_argument("--permutation-order", default=None, help="override the presets' column order")
    p.add_argument("--tokens", type=int, default=16384, help="random tokens behind each XᵀX")
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default=None, help="write the timings here")
    args = p.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    layers = {}
    for name, (out, inp) in LLAMA2_7B_BLOCK.items():
        w = 0.02 * torch.randn(out, inp, generator=gen, device=device)
        w.view(-1)[torch.randint(0, out * inp, (out * inp // 1000,), generator=gen, device=device)] *= 10
        layers[name] = (w, synthetic_xtx(inp, args.tokens, device, gen))
    quantize_weight(*layers["q_proj"], SpQRConfig.from_preset("w3"))  # warm-up (allocator, kernels)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "runs": {}}
    for preset in args.presets:
        overrides = {"permutation_order": args.permutation_order} if args.permutation_order else {}
        cfg = SpQRConfig.from_preset(preset, **overrides)
        rows, total = {}, 0.0
        for name, (w, xtx) in layers.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            r = quantize_weight(w, xtx, cfg)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter() - t
            total += t
            rows[name] = dict(
                seconds=round(t, 3),
                bits=round(r.bits_per_parameter, 4),
                outlier_share=round(r.outlier_share, 5),
                relative_loss=r.relative_loss,
            )
            print(
                f"{preset:6s} {name:10s} {t:7.2f} s  {r.bits_per_parameter:.3f} bits  outliers {100 * r.outlier_share:.3f}%  rel {r.relative_loss:.2e}",
                flush=True,
            )
        print(f"{preset:6s} block total {total:.1f} s", flush=True)
        report["runs"][preset] = {"total_seconds": round(total, 2), "layers": rows, "config": cfg.to_dict()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
