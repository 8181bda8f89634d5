"""Helpers for GPU benchmark scripts (``<package>/benchmarks/bench_*.py``).

Timing follows docs/benchmarks/README.md: CUDA events around the region, warm-up first,
the median of many repetitions, and (for memory-bound kernels) inputs rotated among several
buffers larger than L2 so that repeated runs do not measure the cache.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from papercore.io import write_json


@dataclass
class Entry:
    """One row of docs/benchmarks/<package>.json."""

    name: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    ratio: float
    hardware: str
    date: str
    command: str


def hardware() -> str:
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name} ({p.multi_processor_count} SMs), torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, torch {torch.__version__}"


def today() -> str:
    return datetime.date.today().isoformat()


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def cuda_time_ms(fn: Callable[[int], object], warmup: int = 10, rep: int = 50) -> float:
    """Median milliseconds of ``fn(i)`` over ``rep`` runs (``i`` lets the caller rotate inputs)."""
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(rep):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graph_time_us(calls, min_calls: int = 64, reps: int = 25) -> tuple[float, float]:
    """Median and IQR (microseconds per call) of ``calls`` replayed back to back in a CUDA graph.

    Capturing many calls in one graph takes launch overhead out of the timing, for both sides of a
    comparison alike; ``calls`` usually rotate over weight copies larger than L2 together.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up (compile, allocate) on the capturing stream
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    n = max(min_calls, len(calls))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for k in range(n):
            calls[k % len(calls)]()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / n)
    q = statistics.quantiles(times, n=4)
    del graph
    return statistics.median(times), q[2] - q[0]


def copy_bandwidth_gbs(nbytes: int = 1 << 31, rep: int = 30) -> float:
    """Device-to-device copy bandwidth, counting bytes read plus bytes written (GB/s)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    ms = cuda_time_ms(lambda i: dst.copy_(src), warmup=5, rep=rep)
    return 2 * nbytes / ms / 1e6


def nbytes(obj) -> int:
    """Bytes held by a tensor, a module (parameters and buffers) or a tuple/list of them."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, torch.nn.Module):
        return sum(nbytes(t) for t in [*obj.parameters(), *obj.buffers()])
    if isinstance(obj, tuple | list):
        return sum(nbytes(x) for x in obj)
    raise TypeError(f"cannot count the bytes of {type(obj).__name__}")


def rotating_inputs(make: Callable[[], object], min_total_bytes: int = 1 << 30) -> list:
    """Several independent results of ``make()`` (at least two, at least ``min_total_bytes`` together)
    to rotate through, so that repeated timings read memory rather than a warm L2.

    ``make`` may return a tensor, a module or a tuple of them (see :func:`nbytes`)."""
    first = make()
    count = max(2, -(-min_total_bytes // max(1, nbytes(first))))
    return [first] + [make() for _ in range(count - 1)]


def write_results(entries: Sequence[Entry], json_path: str | os.PathLike | None, md_title: str = "") -> str:
    """Print a table, and write entries to ``json_path`` (+ a Markdown table next to it) when given."""
    lines = [
        "| name | metric | value | baseline | baseline value | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e.name} | {e.metric} | {e.value:.4g} | {e.baseline} | {e.baseline_value:.4g} | {e.ratio:.3g} |"
        )
    table = "\n".join(lines)
    if json_path:
        write_json(json_path, [asdict(e) for e in entries])
        hw = entries[0].hardware if entries else ""
        cmd = entries[0].command if entries else ""
        md = f"# {md_title}\n\nHardware: {hw}. Date: {today()}.\n\nCommand: `{cmd}`\n\n{table}\n"
        Path(json_path).with_suffix(".md").write_text(md)
    print(table)
    return table
