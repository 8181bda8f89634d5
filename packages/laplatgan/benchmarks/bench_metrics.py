"""Metric benchmarks: the certified auction EMD against POT's exact EMD (time and gap), the full
MMD-EMD matrix, and the Triton kNN against torch ``cdist`` + ``topk`` (time and peak memory).

GPU run (the GPU suite's step)::

    python packages/laplatgan/benchmarks/bench_metrics.py --device cuda --points 2048 --pairs 200 \
        --mmd-size 1000 --out docs/benchmarks/laplatgan_metrics_gpu.json

CPU run (small sizes; docs/benchmarks/laplatgan.md)::

    python packages/laplatgan/benchmarks/bench_metrics.py --device cpu --points 256 --pairs 20 --mmd-size 0 \
        --knn-batch 0 --out docs/benchmarks/laplatgan_metrics_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from papercore.bench import Entry, command_line, hardware, today, write_results
from papercore.geometry import emd_auction, emd_exact, knn, pairwise, sample_shapes


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def emd_gap(args, dev) -> list[Entry]:
    a = sample_shapes("chair", args.pairs, args.points, seed=1)
    b = sample_shapes("chair", args.pairs, args.points, seed=2)
    emd_exact(a[:1], b[:1])  # warm-up (imports)
    t0 = time.perf_counter()
    exact = emd_exact(a, b)  # POT/scipy on the CPU, one pair at a time
    t_exact = (time.perf_counter() - t0) / args.pairs
    xa, xb = a.to(dev), b.to(dev)
    emd_auction(xa[:2], xb[:2], tol=args.tol)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    res = [
        emd_auction(xa[s : s + args.batch], xb[s : s + args.batch], tol=args.tol)
        for s in range(0, args.pairs, args.batch)
    ]
    _sync(dev)
    t_auc = (time.perf_counter() - t0) / args.pairs
    value = torch.cat([r.value for r in res])
    gap = ((value - exact) / exact).abs()
    cert = torch.cat([r.certified_gap for r in res])
    print(f"EMD {args.points} pts, {args.pairs} pairs: exact {t_exact * 1e3:.1f} ms/pair, auction {t_auc * 1e3:.2f} ms/pair "
          f"({t_exact / t_auc:.1f}x); gap to exact: max {gap.max():.2e}, mean {gap.mean():.2e}; certified max {cert.max():.2e}")  # fmt: skip
    hw, d, cmd = hardware(), today(), command_line()
    return [
        Entry(f"auction EMD {args.points} pts (tol {args.tol})", "ms per pair", t_auc * 1e3, "exact EMD (scipy/POT, CPU)", t_exact * 1e3, t_exact / t_auc, hw, d, cmd),
        Entry(f"auction EMD {args.points} pts (tol {args.tol})", f"max relative gap to exact over {args.pairs} pairs", float(gap.max()), "tolerance", args.tol, float(gap.max()) / args.tol, hw, d, cmd),
        Entry(f"auction EMD {args.points} pts (tol {args.tol})", "mean relative gap to exact", float(gap.mean()), "tolerance", args.tol, float(gap.mean()) / args.tol, hw, d, cmd),
    ]  # fmt: skip


def mmd_matrix(args, dev) -> list[Entry]:
    a = sample_shapes("table", args.mmd_size, args.points, seed=3)
    b = sample_shapes("table", args.mmd_size, args.points, seed=4)
    _sync(dev)
    t0 = time.perf_counter()
    D = pairwise(a, b, "emd", batch=args.batch, device=dev, tol=args.tol)
    _sync(dev)
    sec = time.perf_counter() - t0
    print(
        f"MMD-EMD matrix {args.mmd_size} x {args.mmd_size} at {args.points} pts: {sec:.1f} s (MMD {D.min(0).values.mean():.4f})"
    )
    return [
        Entry(
            f"MMD-EMD matrix {args.mmd_size}x{args.mmd_size}, {args.points} pts",
            "seconds",
            sec,
            "10-minute goal",
            600.0,
            sec / 600,
            hardware(),
            today(),
            command_line(),
        )
    ]


def knn_bench(args, dev) -> list[Entry]:
    q = torch.rand(args.knn_batch, args.points, 3, device=dev)
    out = []
    timings = {}
    for backend in ("triton", "torch"):
        if backend == "triton" and dev.type != "cuda":
            continue
        fn = (lambda: knn(q, q, args.k, backend="triton")) if backend == "triton" else (
            lambda: torch.cdist(q, q).topk(args.k, dim=-1, largest=False))  # fmt: skip
        fn()
        _sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            ts.append(time.perf_counter() - t0)
        mem = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else float("nan")
        timings[backend] = (statistics.median(ts) * 1e3, mem)
        print(f"kNN {backend}: {timings[backend][0]:.2f} ms, peak extra memory {mem:.0f} MiB")
    if "triton" in timings:
        (tt, mt), (tc, mc) = timings["triton"], timings["torch"]
        name = f"Triton kNN k={args.k}, {args.knn_batch} x {args.points} x {args.points}"
        out += [Entry(name, "ms", tt, "cdist + topk", tc, tc / tt, hardware(), today(), command_line()),
                Entry(name, "peak extra MiB", mt, "cdist + topk", mc, mc / max(mt, 1e-9), hardware(), today(), command_line())]  # fmt: skip
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--points", type=int, default=2048)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--batch", type=int, default=16, help="pairs per auction batch")
    p.add_argument("--tol", type=float, default=0.01)
    p.add_argument("--mmd-size", type=int, default=1000, help="0: skip the MMD-EMD matrix")
    p.add_argument("--knn-batch", type=int, default=64, help="0: skip the kNN comparison")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument(
        "--out", "--json", type=Path, default=None, help="write the entries (JSON) and a Markdown table here"
    )
    args = p.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    entries = emd_gap(args, dev)
    if args.mmd_size:
        entries += mmd_matrix(args, dev)
    if args.knn_batch:
        entries += knn_bench(args, dev)
    write_results(entries, args.out, "point-cloud metrics (papercore.geometry)")


if __name__ == "__main__":
    main()
