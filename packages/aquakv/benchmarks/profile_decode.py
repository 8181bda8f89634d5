"""Where a decode step's time goes: host (Python + launches) against device (kernels), per cache.

Profiles a few decode steps of the Llama-3.2-3B-shaped model of ``bench_decode.py`` with
``torch.profiler`` and prints, per cache, the wall time per step (synchronised), the summed device
kernel time per step, and the top operators by host and by device time. Use it to tell a
launch-bound comparison from a kernel-bound one.

GPU: PYTHONPATH=$PWD/shared/src:$PWD/packages/aquakv/src python packages/aquakv/benchmarks/profile_decode.py --contexts 8192
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import fair_sdpa, parser  # noqa: E402
from bench_decode import build_model, cache_methods, prefilled, random_predictors  # noqa: E402


@torch.no_grad()
def main() -> int:
    args = parser(__doc__).parse_args()
    if not torch.cuda.is_available():
        print("profile_decode: no CUDA device")
        return 1
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from papercore.llm.hf_compat import cache_kwarg

    dev = torch.device("cuda")
    model = build_model(False, dev, torch.float16)
    L = model.config.num_hidden_layers
    C = model.config.num_key_value_heads * model.config.head_dim
    preds = random_predictors(L, C)
    key = cache_kwarg(model)
    skip = ("AQUA-KV torch reference", "AQUA-KV keep-dequantized (no memory saving)")
    methods = {n: m for n, m in cache_methods(model, preds).items() if n not in skip}
    for T in [int(c) for c in args.contexts.split(",")]:
        for name, make in methods.items():
            ids = torch.randint(0, model.config.vocab_size, (1, T), device=dev)
            cache = prefilled(model, make, ids)
            tok = ids[:, -1:]

            def step(tok=tok, cache=cache):
                model(input_ids=tok, use_cache=True, **{key: cache}, logits_to_keep=1)

            for _ in range(3):
                step()
            torch.cuda.synchronize()
            walls = []
            for _ in range(10):
                t0 = time.perf_counter()
                step()
                torch.cuda.synchronize()
                walls.append((time.perf_counter() - t0) * 1e3)
            n = 5
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            with profile(
                activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], profile_memory=True
            ) as prof:
                for _ in range(n):
                    step()
                torch.cuda.synchronize()
            ev = prof.key_averages()
            # kernels only (op rows repeat their kernels' time)
            dev_us = sum(e.self_device_time_total for e in ev if e.device_type == DeviceType.CUDA) / n
            print(f"\n=== T={T} {name}: wall {statistics.median(walls):.2f} ms/step (median of 10), "
                  f"device kernels {dev_us / 1e3:.2f} ms/step")  # fmt: skip
            print(ev.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
            print(ev.table(sort_by="self_device_time_total", row_limit=8, max_name_column_width=60))
            print(f"one step's peak above the cache: {peak:.1f} MiB; largest allocating ops:")
            print(ev.table(sort_by="device_memory_usage", row_limit=8, max_name_column_width=60))
            cache = step = None
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    with fair_sdpa():
        sys.exit(main())
