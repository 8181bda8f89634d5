"""Timing helpers for LLM benchmarks: one batch-1 decode step of a Llama-shaped model in a CUDA graph.

The quantization packages (aqlm, spqr) time their layers inside this step against fp16 linears.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from papercore.llm.rope import rotate_half


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
        return x * cos + rotate_half(x) * sin

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
