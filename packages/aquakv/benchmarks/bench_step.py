"""Decode-step latency of the caches side by side, interleaved so that machine noise hits all alike.

``bench_decode.py`` measures one cache after another; on a shared host, eager decode steps
(host-bound: tens of ms of Python per step on a 28-layer model) drift by tens of percent between
those measurements. This script prefills every cache once at the same context, then runs ``--rounds``
rounds in which each cache takes ``--steps`` decode steps in turn (CUDA events around each step,
after one warm-up round) and reports per cache the median step time over all rounds, the median of
the per-round ratios to the fp16 cache, and the device kernel time of one step (``torch.profiler``).

GPU: PYTHONPATH=$PWD/shared/src:$PWD/packages/aquakv/src python packages/aquakv/benchmarks/bench_step.py --context 8192
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import fair_sdpa  # noqa: E402
from bench_decode import build_model, cache_methods, prefilled, random_predictors  # noqa: E402

from papercore.bench import Entry, command_line, hardware, today, write_results  # noqa: E402

KEEP = ("fp16 DynamicCache", "AQUA-KV fused", "HIGGS-only fused", "transformers QuantizedCache int2")


def device_ms(step) -> float:
    """Summed device kernel time of one step."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(e.self_device_time_total for e in prof.events() if e.device_type == DeviceType.CUDA) / 1e3


@torch.no_grad()
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_step: no CUDA device")
        return 1
    from papercore.llm.hf_compat import cache_kwarg

    dev = torch.device("cuda")
    model = build_model(False, dev, torch.float16)
    L = model.config.num_hidden_layers
    C = model.config.num_key_value_heads * model.config.head_dim
    methods = {k: v for k, v in cache_methods(model, random_predictors(L, C)).items() if k in KEEP}
    key = cache_kwarg(model)
    ids = torch.randint(0, model.config.vocab_size, (1, args.context), device=dev)
    steps = {}
    for name, make in methods.items():
        cache = prefilled(model, make, ids)
        steps[name] = lambda c=cache: model(
            input_ids=ids[:, -1:], use_cache=True, **{key: c}, logits_to_keep=1
        )
    times = {name: [] for name in methods}
    ratios = {name: [] for name in methods}
    for r in range(args.rounds + 1):
        per_round = {}
        for name, step in steps.items():
            ts = []
            for _ in range(args.steps):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                end.synchronize()
                ts.append(start.elapsed_time(end))
            per_round[name] = statistics.median(ts)
            if r:  # round 0 warms up
                times[name] += ts
        if r:
            for name in methods:
                ratios[name].append(per_round[name] / per_round["fp16 DynamicCache"])
    dev_ms = {name: device_ms(step) for name, step in steps.items()}
    hw, date, cmd = hardware(), today(), command_line()
    entries = []
    base = statistics.median(times["fp16 DynamicCache"])
    for name in methods:
        ms = statistics.median(times[name])
        ratio = statistics.median(ratios[name])
        q = statistics.quantiles(ratios[name], n=4) if len(ratios[name]) > 1 else [ratio, ratio, ratio]
        print(f"{name:<36} {ms:8.2f} ms/step (x{ratio:.3f} fp16, IQR of per-round ratios {q[0]:.3f}-{q[2]:.3f}), "
              f"device {dev_ms[name]:.2f} ms")  # fmt: skip
        entries.append(Entry(f"interleaved decode step, context {args.context}, {name}", "time_ms", ms,
                             "fp16 DynamicCache (median of per-round ratios in ratio)", base, 1 / ratio, hw, date,
                             cmd))  # fmt: skip
        entries.append(Entry(f"decode step device kernel time, context {args.context}, {name}", "time_ms",
                             dev_ms[name], "fp16 DynamicCache", dev_ms["fp16 DynamicCache"],
                             dev_ms["fp16 DynamicCache"] / dev_ms[name], hw, date, cmd))  # fmt: skip
    write_results(entries, args.json, "aquakv: interleaved decode steps")
    return 0


if __name__ == "__main__":
    with fair_sdpa():
        sys.exit(main())
