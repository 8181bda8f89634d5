"""Helpers for GPU benchmark scripts (``<package>/benchmarks/bench_*.py``).

Timing follows docs/benchmarks/README.md: CUDA events around the region, warm-up first,
the median of many repetitions, and (for memory-bound kernels) inputs rotated among several
buffers larger than L2 so that repeated runs do not measure the cache.
"""

from __future__ import annotations

import datetime
import json
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


def rotating_inputs(make: Callable[[], torch.Tensor], min_total_bytes: int = 1 << 30) -> list[torch.Tensor]:
    """Several input buffers (at least two, at least ``min_total_bytes`` together) to rotate through."""
    first = make()
    count = max(2, -(-min_total_bytes // (first.numel() * first.element_size())))
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


def load_entries(path: str | os.PathLike) -> list[Entry]:
    return [Entry(**e) for e in json.loads(Path(path).read_text())]


# ---------------------------------------------------------------- end-to-end decode timing
@dataclass(frozen=True)
class DecodeShape:
    """A Llama-style decoder's shapes; the default is Llama-2-7B."""

    hidden: int = 4096
    intermediate: int = 11008
    layers: int = 32
    heads: int = 32
    kv_heads: int = 32
    vocab: int = 32000


LLAMA2_7B = DecodeShape()


class _DecodeBlock(torch.nn.Module):
    def __init__(self, s: DecodeShape, make_linear, context: int, dtype, device):
        super().__init__()
        hd = s.hidden // s.heads
        self.heads, self.kv_heads, self.hd = s.heads, s.kv_heads, hd
        self.proj = torch.nn.ModuleDict(
            {
                "q": make_linear(s.hidden, s.heads * hd),
                "k": make_linear(s.hidden, s.kv_heads * hd),
                "v": make_linear(s.hidden, s.kv_heads * hd),
                "o": make_linear(s.heads * hd, s.hidden),
                "gate": make_linear(s.hidden, s.intermediate),
                "up": make_linear(s.hidden, s.intermediate),
                "down": make_linear(s.intermediate, s.hidden),
            }
        )
        kw = dict(dtype=dtype, device=device)
        self.k_cache = torch.randn(1, s.kv_heads, context, hd, **kw)
        self.v_cache = torch.randn(1, s.kv_heads, context, hd, **kw)
        self.norm1 = torch.ones(s.hidden, **kw)
        self.norm2 = torch.ones(s.hidden, **kw)

    @staticmethod
    def _rope(x, cos, sin):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def forward(self, x, pos, cos, sin):
        p = self.proj
        h = torch.nn.functional.rms_norm(x, (x.shape[-1],), self.norm1)
        q = self._rope(p["q"](h).view(1, self.heads, 1, self.hd), cos, sin)
        k = self._rope(p["k"](h).view(1, self.kv_heads, 1, self.hd), cos, sin)
        self.k_cache.index_copy_(2, pos, k)
        self.v_cache.index_copy_(2, pos, p["v"](h).view(1, self.kv_heads, 1, self.hd))
        a = torch.nn.functional.scaled_dot_product_attention(
            q, self.k_cache, self.v_cache, enable_gqa=self.heads != self.kv_heads
        )
        x = x + p["o"](a.reshape(1, -1))
        h = torch.nn.functional.rms_norm(x, (x.shape[-1],), self.norm2)
        return x + p["down"](torch.nn.functional.silu(p["gate"](h)) * p["up"](h))


def dense_linear(in_features: int, out_features: int, dtype: torch.dtype = torch.float16) -> torch.nn.Module:
    """The baseline side of :func:`decode_step_ms`: a bias-free CUDA ``nn.Linear`` with N(0, 1/in) weights."""
    lin = torch.nn.Linear(in_features, out_features, bias=False, device="cuda", dtype=dtype)
    torch.nn.init.normal_(lin.weight, std=in_features**-0.5)
    return lin.requires_grad_(False)


def decode_step_ms(
    make_linear: Callable[[int, int], torch.nn.Module],
    shape: DecodeShape = LLAMA2_7B,
    *,
    context: int = 256,
    dtype: torch.dtype = torch.float16,
    steps: int = 32,
    reps: int = 10,
) -> float:
    """Median milliseconds of one batch-1 decode step of a Llama-shaped model (CUDA graph, no launch overhead).

    A gpt-fast-style model: per layer RMSNorm, the seven projections built by
    ``make_linear(in_features, out_features)`` (the only thing that differs between the two sides
    of a comparison), RoPE, a write into a static KV cache of ``context`` tokens, SDPA over that
    cache, SiLU MLP; then the final norm and an fp16 LM head. ``steps`` decode steps (each writing
    the next cache slot) are captured in one CUDA graph, which is replayed ``reps`` times.
    """
    device = torch.device("cuda")
    blocks = torch.nn.ModuleList(
        [_DecodeBlock(shape, make_linear, context, dtype, device) for _ in range(shape.layers)]
    )
    head = torch.randn(shape.vocab, shape.hidden, dtype=dtype, device=device) / shape.hidden**0.5
    hd = shape.hidden // shape.heads
    x0 = torch.randn(1, shape.hidden, dtype=dtype, device=device)
    positions = [torch.tensor([context - steps + t], device=device) for t in range(steps)]
    freq = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=device).float() / hd))
    angles = [torch.cat([p.float()[:, None] * freq] * 2, dim=-1) for p in positions]
    trig = [(a.cos().to(dtype), a.sin().to(dtype)) for a in angles]

    @torch.no_grad()
    def run():
        x = x0
        for pos, (cos, sin) in zip(positions, trig):
            for b in blocks:
                x = b(x, pos, cos, sin)
            logits = torch.nn.functional.linear(torch.nn.functional.rms_norm(x, (shape.hidden,)), head)
            x = x0 + logits[:, : shape.hidden] * 0  # keep a data dependency from step to step
        return x

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        run()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        run()
    times = []
    for _ in range(reps + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / steps)
    del graph
    torch.cuda.empty_cache()
    return statistics.median(times[2:])
