"""GPU benchmark of the nearest-code search of the calibration engine: the fused Triton kernel
(``aqlm.kernels.nearest.argmin_scores_triton``) against the chunked ``addmm`` + ``argmin`` of
``aqlm.engine._argmin_scores_torch``.

Usage: python packages/aqlm/benchmarks/bench_nearest.py [--json PATH] [--reps 5]
       [--sweep] [--shapes N:K:D,...]

For each shape (default: 2^21 rows x 65536 codes x 8 dims, as 1x16g8 k-means and beam search on a
large layer, and 2^21 x 256 x 8, as 2x8g8), on random data (``a = ||c||^2``, so both compute
nearest centroids): checks that each row's chosen code scores, in float64, within ``1e-5``
(relative to the score's scale) of the other method's choice, then reports the median of
``--reps`` CUDA-event timings after warm-up, and the speed-up.

``--sweep`` instead times a grid of launch settings of the kernel at each shape (how
``default_config`` was chosen).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch

SHAPES = [(1 << 21, 65536, 8), (1 << 21, 256, 8)]
TOL = 1e-5


def make(n: int, k: int, d: int, seed: int = 0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    u = torch.randn(n, d, device="cuda", generator=gen)
    cb = torch.randn(k, d, device="cuda", generator=gen)
    return u, cb, cb.square().sum(1)


def time_ms(fn, warmup: int, reps: int) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` CUDA-event timings, after ``warmup`` calls."""
    from papercore.bench import cuda_time_ms

    return cuda_time_ms(lambda i: fn(), warmup=warmup, rep=reps)


def chosen_scores(u, cb, a, idx) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 score of code ``idx[n]`` for row ``n``, and its scale (for a relative tolerance)."""
    c = cb.double()[idx]
    score = a.double()[idx] - 2 * (c * u.double()).sum(1)
    scale = a.double()[idx].abs() + 2 * (c.abs() * u.double().abs()).sum(1)
    return score, scale


def check(u, cb, a, got, ref) -> tuple[float, float]:
    """Fraction of rows whose index differs, and the worst relative excess of either choice's score."""
    s_got, scale = chosen_scores(u, cb, a, got)
    s_ref, scale_ref = chosen_scores(u, cb, a, ref)
    excess = ((s_got - s_ref).abs() / torch.maximum(scale, scale_ref).clamp_min(1e-30)).max().item()
    return (got != ref).double().mean().item(), excess


def sweep(shapes, args) -> None:
    from aqlm.kernels.nearest import NearestConfig, argmin_scores_triton

    # (block_n, block_k, num_warps): a thread holds block_n rows x block_k / (32 num_warps) codes
    grid = [
        NearestConfig(*c)
        for c in [
            (4, 128, 1), (4, 256, 2), (4, 512, 4), (4, 512, 2), (4, 1024, 4),
            (8, 128, 1), (8, 256, 2), (8, 256, 4), (8, 512, 4), (8, 512, 2), (8, 1024, 8), (8, 1024, 4),
            (8, 2048, 8), (16, 256, 2), (16, 256, 4), (16, 512, 4), (16, 512, 8), (16, 1024, 8),
            (16, 1024, 4), (32, 128, 4), (32, 256, 4), (32, 256, 8), (32, 512, 4), (64, 128, 4),
            (64, 256, 8),
        ]
    ]  # fmt: skip
    for n, k, d in shapes:
        u, cb, a = make(n, k, d)
        ref = argmin_scores_triton(u, cb, a)
        results = []
        for cfg in grid:
            if cfg.block_k > max(128, 2 * k):
                continue
            try:
                got = argmin_scores_triton(u, cb, a, config=cfg)
                frac, _ = check(u, cb, a, got, ref)
                ms = time_ms(partial(argmin_scores_triton, u, cb, a, config=cfg), 2, args.reps)
            except Exception as e:  # a setting that does not compile (registers, shared memory)
                print(f"{n}x{k}x{d} {cfg}: {type(e).__name__}: {str(e)[:100]}", flush=True)
                continue
            results.append((ms, cfg, frac))
            print(f"{n}x{k}x{d} {cfg}: {ms:.3f} ms (differs on {frac:.2e} of rows)", flush=True)
        results.sort(key=lambda r: r[0])
        print(f"best for {n}x{k}x{d}:")
        for ms, cfg, _ in results[:5]:
            print(f"  {ms:8.3f} ms  {cfg}")


def _int(text: str) -> int:
    """``"2^21"`` or ``"2**21"`` or ``"65536"``."""
    base, _, exp = text.replace("**", "^").partition("^")
    return int(base) ** int(exp) if exp else int(base)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="PATH", help="write papercore.bench entries here (+ a .md table)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shapes", default=None, help="N:K:D,... (default 2^21:65536:8,2^21:256:8)")
    ap.add_argument("--sweep", action="store_true", help="time the kernel's launch settings instead")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_nearest.py needs a CUDA GPU and none was found; nothing to measure.", file=sys.stderr)
        return 1
    from aqlm.engine import CHUNK_ELEMENTS, _argmin_scores_torch
    from aqlm.kernels.nearest import argmin_scores_triton, default_config
    from papercore.bench import Entry, command_line, hardware, today, write_results

    torch.backends.cuda.matmul.allow_tf32 = False  # the engine's setting: full float32 scores
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(_int(v) for v in s.split(":")) for s in args.shapes.split(",")]
    if args.sweep:
        sweep(shapes, args)
        return 0
    hw, date, cmd = hardware(), today(), command_line()
    print(hw)
    entries = []
    for n, k, d in shapes:
        u, cb, a = make(n, k, d)
        torch_fn = partial(_argmin_scores_torch, u, cb, a, CHUNK_ELEMENTS)
        triton_fn = partial(argmin_scores_triton, u, cb, a)
        frac, excess = check(u, cb, a, triton_fn(), torch_fn())
        ok = excess <= TOL
        t_torch = time_ms(torch_fn, 2, args.reps)
        t_triton = time_ms(triton_fn, 3, args.reps)
        del u, cb, a, torch_fn, triton_fn
        torch.cuda.empty_cache()
        print(
            f"N={n} K={k} D={d} ({default_config(k, d)}): torch {t_torch:.3f} ms, triton {t_triton:.3f} ms, "
            f"speed-up {t_torch / t_triton:.2f}x; indices differ on {frac:.2e} of rows, worst relative "
            f"score excess {excess:.1e} ({'ok' if ok else 'FAILED'})",
            flush=True,
        )
        if not ok:
            print(f"chosen scores disagree by more than {TOL:g} relative", file=sys.stderr)
            return 1
        entries.append(
            Entry(
                f"argmin_scores N={n} K={k} D={d}",
                "ms",
                t_triton,
                "torch chunked addmm + argmin (engine._argmin_scores_torch)",
                t_torch,
                t_torch / t_triton,
                hw,
                date,
                cmd,
            )
        )
    write_results(entries, args.json, md_title="AQLM nearest-code search (engine._argmin_scores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
