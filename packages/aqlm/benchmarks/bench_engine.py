"""Calibration time of ``aqlm.engine.quantize_weight`` on Llama-2-7B-shaped linears (one GPU).

    python packages/aqlm/benchmarks/bench_engine.py [--schemes 1x16g8,2x8g8] [--max-epochs N]
        [--json PATH] [--jsonl PATH]        (or: python -m aqlm.engine --bench ...)

Acceptance target: one Llama-2-7B block (q, k, v, o: 4096x4096; gate, up: 11008x4096 [out x in];
down: 4096x11008) at 1x16g8 in at most 10 minutes on one H200. Each distinct shape is quantized
once, end to end (k-means init, Adam, beam search: ``AQResult.timings``), and a block is estimated
as 4 t(q) + 2 t(gate) + t(down). The baseline of a layer's time is its share of the 600 s budget
(by weight count). XTX accumulation is not timed (done by the block pipeline).

Weights are random (N(0, 0.02^2), a few 10x input columns) and XTX = X^T X / n from random
activations with per-direction scales spanning 1e-3..1e2 in variance, in a random basis. The
relative MSE on such layers says little about real models; it is compared with round-to-nearest
2-bit g16 (4 bits with its fp16 scale and minimum) on the same layer as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import torch

SHAPES = {"q": (4096, 4096), "gate": (11008, 4096), "down": (4096, 11008)}  # [out, in]
PER_BLOCK = {"q": 4, "gate": 2, "down": 1}  # q, k, v, o / gate, up / down
BUDGET_S = 600.0


def make_layer(out: int, inp: int, tokens: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(out, inp, device="cuda", generator=gen) * 0.02
    w[:, torch.randint(inp, (8,), device="cuda", generator=gen)] *= 10
    q, _ = torch.linalg.qr(torch.randn(inp, inp, device="cuda", generator=gen))
    std = torch.logspace(-1.5, 1, inp, device="cuda")  # variances 1e-3 .. 1e2
    x = (torch.randn(tokens, inp, device="cuda", generator=gen) * std) @ q
    return w, (x.T.double() @ x.double()) / tokens


def rtn(w: torch.Tensor, bits: int = 2, group: int = 16) -> torch.Tensor:
    out, inp = w.shape
    x = w.reshape(out, inp // group, group)
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    step = ((hi - lo) / (2**bits - 1)).clamp_min(1e-12)
    return (((x - lo) / step).round().clamp(0, 2**bits - 1) * step + lo).reshape(out, inp)


def check(config_cls) -> None:
    """Before timing: the GPU beam search's tracked loss and the result's loss match float64 recomputations."""
    from aqlm import engine
    from aqlm.kernels.reference import dequantize

    w, h = make_layer(256, 512, 2048, seed=1)
    s = w.norm(dim=1).view(-1, 1, 1, 1)
    codes, cb = engine.residual_kmeans_init(w / s.view(-1, 1), 1, 8, 8, iters=10)
    new, tracked = engine.beam_search_pass(w, h.float(), codes, cb, s, chunk_elements=1 << 16)
    direct = engine.xtx_loss(w.double(), dequantize(new, cb.double(), s.double()), h).item()
    before = engine.xtx_loss(w.double(), dequantize(codes, cb.double(), s.double()), h).item()
    assert abs(tracked - direct) <= 1e-3 * direct and direct < before, (tracked, direct, before)
    config = config_cls.from_scheme("2x8g8", max_epochs=2, steps_per_epoch=10, init_max_iter=5)
    r = engine.quantize_weight(w, h, config)
    direct = engine.xtx_loss(
        w.double(), dequantize(r.codes, r.codebooks.double(), r.scales.double()), h
    ).item()
    assert abs(r.loss - direct) <= 1e-9 * direct, (r.loss, direct)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="1x16g8,2x8g8")
    ap.add_argument("--layers", default="q,gate,down", help="which shapes: q (4096x4096), gate, down")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative_mse_tolerance")
    ap.add_argument("--init-max-iter", type=int, default=100)
    ap.add_argument("--init-points-per-centroid", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=16384, help="rows of the random activations behind XTX")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (default: full fp32)")
    ap.add_argument("--json", metavar="PATH", help="write the results as a JSON list to PATH")
    ap.add_argument("--jsonl", metavar="PATH", help="append one line per layer as soon as it is done")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("bench_engine.py needs a CUDA GPU and none was found; nothing to measure.", file=sys.stderr)
        return 1
    from aqlm.config import AQLMConfig, bits_per_parameter
    from aqlm.engine import quantize_weight, xtx_loss
    from papercore.bench import Entry, command_line, hardware, today, write_results

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    log = logging.getLogger("aqlm.engine")  # per-epoch progress on stderr
    log.setLevel(logging.DEBUG)
    log.addHandler(logging.StreamHandler())
    hw, date, cmd = hardware(), today(), command_line()
    check(AQLMConfig)
    entries = []
    block_params = sum(n * SHAPES[k][0] * SHAPES[k][1] for k, n in PER_BLOCK.items())
    block = {}
    print(
        f"{hw}\n{'scheme':<8}{'layer':<6}{'shape':>12}{'bits':>6}{'epochs':>7}{'init s':>8}{'adam s':>8}"
        f"{'beam s':>8}{'total s':>9}{'rel MSE':>10}{'RTN':>9}"
    )
    for scheme in args.schemes.split(","):
        for layer in args.layers.split(","):
            out, inp = SHAPES[layer]
            w, h = make_layer(out, inp, args.tokens)
            config = AQLMConfig.from_scheme(
                scheme,
                beam_size=args.beam_size,
                max_epochs=args.max_epochs,
                steps_per_epoch=args.steps_per_epoch,
                relative_mse_tolerance=args.tolerance,
                init_max_iter=args.init_max_iter,
                init_max_points_per_centroid=args.init_points_per_centroid,
            )
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            r = quantize_weight(w, h, config)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            ref = xtx_loss(w.double(), torch.zeros_like(w, dtype=torch.float64), h).item()
            rtn_rel = xtx_loss(w.double(), rtn(w).double(), h).item() / ref
            bits = bits_per_parameter(
                out, inp, config.num_codebooks, config.nbits_per_codebook, config.in_group_size
            )
            t = r.timings
            print(
                f"{scheme:<8}{layer:<6}{f'{out}x{inp}':>12}{bits:>6.2f}{r.epochs:>7}{t['init']:>8.1f}"
                f"{t['adam']:>8.1f}{t['beam']:>8.1f}{seconds:>9.1f}{r.relative_mse:>10.4g}{rtn_rel:>9.4g}",
                flush=True,
            )
            record = dict(
                scheme=scheme,
                layer=layer,
                shape=[out, inp],
                bits=bits,
                epochs=r.epochs,
                seconds=seconds,
                timings=t,
                relative_mse=r.relative_mse,
                rtn_relative_mse=rtn_rel,
                history=r.history,
            )
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(record) + "\n")
            share = BUDGET_S * out * inp / block_params
            name = f"quantize_weight {scheme} beam{args.beam_size} {out}x{inp} ({r.epochs} epochs)"
            entries += [
                Entry(
                    name,
                    "seconds",
                    seconds,
                    "share of 600 s per 7B block",
                    share,
                    share / seconds,
                    hw,
                    date,
                    cmd,
                ),
                Entry(
                    name,
                    "relative_mse",
                    r.relative_mse,
                    "RTN 2-bit g16",
                    rtn_rel,
                    rtn_rel / r.relative_mse,
                    hw,
                    date,
                    cmd,
                ),
            ]
            block.setdefault(scheme, {})[layer] = seconds
            del w, h, r
            torch.cuda.empty_cache()
        if set(block[scheme]) == set(PER_BLOCK):
            est = sum(n * block[scheme][k] for k, n in PER_BLOCK.items())
            print(f"{scheme}: estimated Llama-2-7B block {est:.0f} s (budget {BUDGET_S:.0f} s)", flush=True)
            entries.append(
                Entry(
                    f"quantize one Llama-2-7B block {scheme} beam{args.beam_size} (estimated)",
                    "seconds",
                    est,
                    "acceptance budget",
                    BUDGET_S,
                    BUDGET_S / est,
                    hw,
                    date,
                    cmd,
                )
            )
    print()
    write_results(entries, args.json, md_title="AQLM calibration engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
