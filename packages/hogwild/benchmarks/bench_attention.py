"""GPU benchmark of query-rotation attention (hogwild.kernels) against the two alternatives.

Usage:
  PYTHONPATH=$PWD/shared/src:$PWD/packages/hogwild/src python packages/hogwild/benchmarks/bench_attention.py \
      [--json docs/benchmarks/hogwild.json] [--quick] [--no-layer]

1. Checks (abort on failure): the Triton kernel against a float32 reference (the explicit views:
   blocks concatenated and re-rotated, causal SDPA) for head dims 64/128/256, GQA 1/4/5/7/8, fp16 and
   bf16, 1 and 3 tokens per worker, W in {1, 3}; then every timed configuration once, bf16, rel. error <= 2e-2.
2. Times one attention step of W workers (combined layout: shared history + W current steps; every
   worker's view holds `context` tokens; one new token per worker), bf16, at the attention shapes of
   Qwen2.5-7B (28 q heads, 4 kv heads, head dim 128) and Qwen2.5-32B (40 q / 8 kv / 128), W in
   {1, 2, 4, 8}, contexts 1k / 8k / 32k, side by side with
   (i)  W independent sequences of `context` tokens through torch SDPA (FlashAttention backend where it
        accepts the shapes), holding W copies of the KV memory: the ceiling;
   (ii) the naive approach: rotate and concatenate a copy of each worker's view, then SDPA.
   Each side is timed with CUDA events (median, papercore.bench.cuda_time_ms) after warm-up, one call
   (its launches included) per repetition, rotating among enough input copies to exceed the 60 MB L2;
   ours and (i) are also timed replayed from a CUDA graph (papercore.bench.graph_time_us), which takes
   the launch overhead (two Triton launches for ours, one for SDPA) out of both sides.
3. Optionally (default on) times one decode step of a 2-layer model shaped like Qwen2.5-7B (random
   weights, vocab cut to 4096) through hogwild.Engine (W workers, 8k shared prompt) against a
   transformers DynamicCache batch of W independent sequences of the same length.
Records time_ms (ratio = baseline / ours, > 1: ours faster), tokens/s and KV memory entries.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback

import torch

from hogwild.bench import independent_inputs, make_case, reference_output, run_hogwild, run_naive, sdpa
from papercore.bench import Entry, command_line, cuda_time_ms, graph_time_us, hardware, today, write_results
from papercore.testing import rel_error

SHAPES = {"qwen2.5-7b": (28, 4, 128), "qwen2.5-32b": (40, 8, 128)}
TOL = 2e-2
L2_BYTES = 256 << 20  # rotate inputs until each side touches > 4x the H200's L2


def log(msg):
    print(msg, flush=True)


def sdpa_flash(q, k, v):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        return sdpa(q, k, v)


def check_kernel(device, quick) -> float:
    """Kernel vs float32 reference over head dims, GQA ratios, dtypes and tokens per worker."""
    worst = 0.0
    dims = (64,) if quick else (64, 128, 256)
    gqas = (1, 4) if quick else (1, 4, 5, 7, 8)
    dtypes = (torch.float32,) if quick else (torch.float16, torch.bfloat16)
    for d in dims:
        for g in gqas:
            for dt in dtypes:
                for w, s in ((1, 1), (3, 3)):
                    hkv = 2
                    case = make_case(
                        w, 300 if quick else 3000, hkv * g, hkv, d, dt, device, tokens=s, seed=d + g
                    )
                    out = run_hogwild(case, "triton")
                    err = rel_error(out.float(), reference_output(case))
                    worst = max(worst, err)
                    if not err <= (1e-5 if dt == torch.float32 else TOL):
                        raise SystemExit(
                            f"CHECK FAILED: d={d} gqa={g} {dt} W={w} S={s}: rel. error {err:.2e}"
                        )
    log(f"kernel check passed (worst rel. error {worst:.2e})")
    return worst


def copies_for(nbytes: int, quick: bool) -> int:
    return 1 if quick else int(min(64, max(1, math.ceil(L2_BYTES / max(1, nbytes)))))


def time_fn(fn, n, quick):
    if quick:
        from hogwild.bench import wall_time_ms

        return wall_time_ms(lambda: fn(0), warmup=1, rep=3)
    return cuda_time_ms(lambda i: fn(i % n), warmup=10, rep=50)


def bench_config(shape, w, ctx, device, dtype, quick, entries, meta):
    hq, hkv, d = SHAPES[shape] if not quick else (8, 2, 64)
    name = f"{shape} attention step, W={w}, context {ctx}, {str(dtype).removeprefix('torch.')}"
    kv_shared = 2 * hkv * ctx * d * dtype.itemsize  # one copy (the history plus every step, once)
    n_cases = copies_for(kv_shared, quick)
    cases = [make_case(w, ctx, hq, hkv, d, dtype, device, seed=i) for i in range(n_cases)]
    ref = reference_output(cases[0])
    err = rel_error(run_hogwild(cases[0], "triton" if not quick else "auto").float(), ref)
    err_naive = rel_error(run_naive(cases[0]).float(), ref)
    if err > TOL or err_naive > TOL:
        raise RuntimeError(f"check failed before timing: kernel {err:.2e}, naive {err_naive:.2e}")
    backend = "auto" if quick else "triton"
    t_ours = time_fn(lambda i: run_hogwild(cases[i], backend), n_cases, quick)
    # (ii) naive: builds the copies inside every call
    t_naive = time_fn(lambda i: run_naive(cases[i]), n_cases, quick)
    # (i) independent sequences: W copies prepared once (not timed), SDPA over the batch
    indep_bytes = w * kv_shared
    n_ind = min(n_cases, copies_for(indep_bytes, quick))
    inputs = []
    for i in range(n_ind):
        _, k, v = independent_inputs(cases[i])
        inputs.append((cases[i].q, k.contiguous(), v.contiguous()))
    flash_name = "SDPA (flash)"
    try:
        sdpa_flash(*inputs[0])
        run_ind = lambda i: sdpa_flash(*inputs[i])
    except RuntimeError:
        flash_name = "SDPA (default backend)"
        run_ind = lambda i: sdpa(*inputs[i])
    t_ind = time_fn(run_ind, n_ind, quick)
    if not quick:  # launch overhead out of both sides: many calls replayed from one CUDA graph
        try:
            g_ours, _ = graph_time_us([lambda i=i: run_hogwild(cases[i], backend) for i in range(n_cases)])
            g_ind, _ = graph_time_us([lambda i=i: run_ind(i) for i in range(n_ind)])
            entries.append(Entry(name + ", CUDA graph", "time_ms", g_ours / 1e3,
                                 f"{w} independent sequences, {flash_name}, {w} KV copies, CUDA graph",
                                 g_ind / 1e3, g_ind / g_ours, *meta))  # fmt: skip
            log(
                f"{name}: CUDA graph: ours {g_ours:.1f} us | independent {g_ind:.1f} us ({g_ind / g_ours:.2f}x)"
            )
        except Exception as e:
            log(f"{name}: CUDA-graph timing skipped ({type(e).__name__}: {e})")
    metric = "time_ms" if not quick else "wall_ms (CPU, quick)"
    entries.append(Entry(name, metric, t_ours, f"{w} independent sequences, {flash_name}, {w} KV copies",
                         t_ind, t_ind / t_ours, *meta))  # fmt: skip
    entries.append(Entry(name, metric, t_ours, "naive: rotate + concatenate a copy per worker, then SDPA",
                         t_naive, t_naive / t_ours, *meta))  # fmt: skip
    entries.append(Entry(name, "tokens/s", w * 1e3 / t_ours, f"{w} independent sequences, {flash_name}",
                         w * 1e3 / t_ind, t_ind / t_ours, *meta))  # fmt: skip
    entries.append(Entry(name, "KV MB", kv_shared / 2**20, f"{w} independent sequences (W copies)",
                         indep_bytes / 2**20, indep_bytes / kv_shared, *meta))  # fmt: skip
    log(f"{name}: ours {t_ours:.4f} ms | independent {t_ind:.4f} ms ({t_ind / t_ours:.2f}x) | "
        f"naive {t_naive:.4f} ms ({t_naive / t_ours:.2f}x) | err {err:.1e}")  # fmt: skip
    torch.cuda.empty_cache() if torch.cuda.is_available() else None


def bench_layer(device, dtype, quick, entries, meta, workers=(1, 2, 4, 8), ctx=8192):
    """One decode step of a 2-layer Qwen2.5-7B-shaped model: hogwild.Engine vs a DynamicCache batch."""
    from hogwild.cache import Row
    from hogwild.model import Engine
    from papercore.llm import zoo
    from papercore.llm.hf_compat import cache_kwarg, output_cache

    if quick:
        kw = dict(hidden_size=64, num_heads=4, num_kv_heads=2, num_layers=2, vocab_size=4096)
        workers, ctx = (1, 2), 128
    else:
        kw = dict(hidden_size=3584, num_heads=28, num_kv_heads=4, num_layers=2, intermediate_size=18944,
                  head_dim=128, vocab_size=4096, max_position_embeddings=65536)  # fmt: skip
    model = zoo.random_model("qwen2", dtype=dtype, **kw).to(device)
    for w in workers:
        name = f"decode step, 2-layer Qwen2.5-7B-shaped model, W={w}, context {ctx}"
        if quick:
            name = f"decode step, tiny qwen2, W={w}, context {ctx}"
        engine = Engine(model, backend="auto")
        engine.cache.create("common", capacity=ctx + 64)
        prompt = torch.randint(3, 4000, (ctx,)).tolist()
        for i in range(0, ctx, 2048):
            engine.step([Row("common", ["common"], prompt[i : i + 2048])])
        names = [f"w{i}" for i in range(w)]
        for n in names:
            engine.cache.create(n, capacity=4096)
        rows = [Row(n, ["common", *[o for o in names if o != n], n], [7]) for n in names]

        def ours(i, rows=rows, engine=engine, names=names):
            engine.step(rows)
            if engine.cache.length(names[0]) > 2000:
                for n in names:
                    engine.cache.clear(n)

        t_ours = time_fn(ours, 1, quick)
        ids = torch.randint(3, 4000, (w, ctx), device=device)
        with torch.no_grad():
            past = None
            for i in range(0, ctx, 2048):
                out = model(
                    input_ids=ids[:, i : i + 2048],
                    use_cache=True,
                    **({cache_kwarg(model): past} if past is not None else {}),
                )
                past = output_cache(out)

            def hf(i, past=past, ids=ids):
                model(input_ids=ids[:, -1:], use_cache=True, **{cache_kwarg(model): past})
                past.crop(-1)  # drop the token again (negative: accepted by transformers 5.17 and 5.24)

            t_hf = time_fn(hf, 1, quick)
        metric = "time_ms" if not quick else "wall_ms (CPU, quick)"
        entries.append(Entry(name, metric, t_ours, f"transformers DynamicCache, batch of {w} sequences (SDPA)",
                             t_hf, t_hf / t_ours, *meta))  # fmt: skip
        log(f"{name}: hogwild {t_ours:.3f} ms | transformers {t_hf:.3f} ms ({t_hf / t_ours:.2f}x)")
        del engine, past
        torch.cuda.empty_cache() if torch.cuda.is_available() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="docs/benchmarks/hogwild.json")
    ap.add_argument("--out", default=None, help="alias of --json")
    ap.add_argument("--quick", action="store_true", help="tiny shapes on the CPU (checks the script runs)")
    ap.add_argument("--no-layer", action="store_true", help="skip the model-layer decode step")
    ap.add_argument("--shapes", default="qwen2.5-7b,qwen2.5-32b")
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--contexts", default="1024,8192,32768")
    args = ap.parse_args()
    json_path = args.out or args.json
    if args.quick:
        device, dtype = "cpu", torch.float32
        workers, contexts, shapes = (1, 2), (256,), ("tiny",)
        json_path = None if json_path == "docs/benchmarks/hogwild.json" else json_path
    else:
        if not torch.cuda.is_available():
            print("bench_attention.py needs a CUDA GPU (use --quick to check it on the CPU)")
            return 1
        device, dtype = "cuda", torch.bfloat16
        workers = tuple(int(x) for x in args.workers.split(","))
        contexts = tuple(int(x) for x in args.contexts.split(","))
        shapes = tuple(args.shapes.split(","))
    t0 = time.perf_counter()
    meta = (hardware(), today(), command_line())
    entries: list[Entry] = []
    if not args.quick:
        worst = check_kernel(device, args.quick)
        entries.append(Entry("kernel check: fp16/bf16, head dims 64/128/256, GQA 1/4/5/7/8, 1 and 3 tokens",
                             "rel_error", worst, "float32 explicit concatenation", TOL, TOL / max(worst, 1e-12), *meta))  # fmt: skip
    failures = []
    for shape in shapes:
        for ctx in contexts:
            for w in workers:
                try:
                    bench_config(shape, w, ctx, device, dtype, args.quick, entries, meta)
                except torch.cuda.OutOfMemoryError:
                    failures.append(f"{shape} W={w} ctx={ctx}: out of memory")
                    torch.cuda.empty_cache()
                except Exception as e:  # one failing configuration must not stop the others
                    failures.append(f"{shape} W={w} ctx={ctx}: {type(e).__name__}: {e}")
                    traceback.print_exc()
    if not args.no_layer:
        try:
            bench_layer(device, dtype, args.quick, entries, meta)
        except Exception as e:
            failures.append(f"layer decode step: {type(e).__name__}: {e}")
            traceback.print_exc()
    write_results(entries, json_path, md_title="hogwild: query-rotation attention")
    for f in failures:
        print("FAILED:", f)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
