"""Attention cases and timers shared by ``hogwild bench`` and ``benchmarks/bench_attention.py``.

A case is one decode step of W workers in the combined layout: a shared history of
``context - W * step`` tokens, W current steps of ``step`` tokens, each worker attending over
``[history, others' steps..., own step]`` (so every worker's view has ``context`` tokens) with one
new query token. Three ways to compute it:

* ``hogwild``: query-rotation attention over the one shared copy (the Triton kernel on a GPU);
* ``independent``: W independent sequences of ``context`` tokens each (W copies of the KV memory)
  through torch SDPA: the ceiling, what batched decoding of W unrelated sequences costs;
* ``naive``: per step, rotate and concatenate a copy of each worker's view, then SDPA (the
  reference engine's approach).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hogwild.cache import Row, SharedCache, StepPlan
from hogwild.rope import RopeSpec, rotate


@dataclass
class Case:
    cache: SharedCache
    plan: StepPlan
    q: torch.Tensor  # [W, Hq, 1, D], rotated at the local positions (as a model hands them over)
    q_raw: torch.Tensor  # the same queries before any rotation
    views: list[list[str]]
    workers: int
    context: int


def make_case(workers, context, hq, hkv, d, dtype, device, step=64, seed=0, tokens=1) -> Case:
    g = torch.Generator(device="cpu").manual_seed(seed)
    spec = RopeSpec(1.0 / (1e6 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)))
    step = max(tokens, min(step, max(1, context // (2 * workers))))
    hist = context - workers * step
    cache = SharedCache(1, hkv, d, spec, dtype=dtype, device=device, capacity=context + workers * 8 + 64)
    cache.create("common", capacity=hist + 8)

    def rnd(n):
        return (torch.randn(1, hkv, n, d, generator=g) * 0.5).to(device=device, dtype=dtype)

    cache.append_kv("common", rnd(hist), rnd(hist))
    names = [f"step:{i}" for i in range(workers)]
    for n in names:
        cache.create(n, capacity=step + 8)
        if step > tokens:
            cache.append_kv(n, rnd(step - tokens), rnd(step - tokens))
    views = [["common", *[o for o in names if o != n], n] for n in names]
    plan = cache.plan([Row(n, v, [0] * tokens) for n, v in zip(names, views)])
    new = lambda: rnd(workers * tokens).reshape(hkv, workers, tokens, d).transpose(0, 1).contiguous()
    cache.write(plan, 0, new(), new())
    cache.commit(plan)
    q_raw = torch.randn(workers, hq, tokens, d, generator=g).to(device=device, dtype=dtype)
    local = torch.arange(step - tokens, step, device=device)
    q = rotate(q_raw, local, spec.inv_freq.to(device))
    return Case(cache, plan, q, q_raw, views, workers, context)


def run_hogwild(case: Case, backend: str) -> torch.Tensor:
    return case.cache.attend(case.plan, 0, case.q, case.q.shape[-1] ** -0.5, backend)


def independent_inputs(case: Case):
    """Queries and W separate KV copies of ``context`` tokens each, ``[W, Hkv, T, D]`` (built per call)."""
    ks, vs = zip(*(case.cache.view_kv(v, 0) for v in case.views))
    return case.q, torch.stack(ks), torch.stack(vs)


def sdpa(q, k, v):
    """SDPA of the last ``S`` positions (causal among them) with GQA (k/v may have fewer heads)."""
    s, t = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if s == 1:
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
    mask = torch.arange(t, device=q.device) <= torch.arange(t - s, t, device=q.device)[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


def _query_positions(case: Case, k: torch.Tensor) -> torch.Tensor:
    s, t = case.q.shape[2], k.shape[2]
    return torch.arange(t - s, t, device=k.device)


def run_naive(case: Case) -> torch.Tensor:
    """Rotate and concatenate a copy of every worker's view, then SDPA over the batch."""
    _, k, v = independent_inputs(case)  # the copies are rebuilt every call: that is the cost
    return sdpa(rotate(case.q_raw, _query_positions(case, k), case.cache.rope.inv_freq), k, v)


def reference_output(case: Case) -> torch.Tensor:
    """float32 ground truth: the explicit views (concatenated, re-rotated blocks) in float32."""
    _, k, v = independent_inputs(case)
    q = rotate(case.q_raw.float(), _query_positions(case, k), case.cache.rope.inv_freq)
    return sdpa(q, k.float(), v.float())


def wall_time_ms(fn, warmup=2, rep=5) -> float:
    """Median wall-clock milliseconds (CPU; synchronises CUDA when present)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rep):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
