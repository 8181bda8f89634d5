"""Per-step decode latency and peak memory of AQUA-KV (fused kernels) against the fp16 cache,
HIGGS-only, KIVI-2, the torch reference path, the keep-dequantized simulation and transformers'
QuantizedCache (when a backend is installed), on a Llama-3.2-3B-shaped random-weight model
(28 layers, 8 KV heads x 128) at contexts 1k, 8k and 32k.

GPU: PYTHONPATH=$PWD/shared/src:$PWD/packages/aquakv/src python packages/aquakv/benchmarks/bench_decode.py --out $OUT
CPU check: ... bench_decode.py --quick
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, fair_sdpa, guarded, parser  # noqa: E402

from papercore.bench import Entry, command_line, cuda_time_ms, hardware, today, write_results  # noqa: E402


def build_model(quick: bool, dev, dtype):
    from transformers import AutoModelForCausalLM, LlamaConfig

    if quick:
        cfg = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096)  # fmt: skip
    else:
        cfg = LlamaConfig(vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                          num_attention_heads=24, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
                          rope_theta=500000.0, tie_word_embeddings=True,
                          rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})  # fmt: skip
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model.eval()


def random_predictors(L, C, seed=0):
    from aquakv.predictors import Predictors

    g = torch.Generator().manual_seed(seed)
    p = Predictors.zeros(L, C)
    for i in range(1, L):
        p.key[i] = (torch.randn(C, C, generator=g) / C**0.5 * 0.5, torch.randn(C, generator=g) * 0.01)
        p.value[i] = (
            torch.randn(C, 2 * C, generator=g) / (2 * C) ** 0.5 * 0.5,
            torch.randn(C, generator=g) * 0.01,
        )
    return p


def cache_bytes(cache) -> int:
    if hasattr(cache, "memory"):
        m = cache.memory()
        return m["quantized"] + m["fp"] + m.get("dequantized_kept", 0)
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def cache_methods(model, preds) -> dict:
    """Name -> factory of every cache compared (``None`` from a factory: the fp16 ``DynamicCache``)."""
    from aquakv.cache import AquaKVCache
    from aquakv.config import AquaKVConfig
    from aquakv.kivi import KIVICache, hf_quantized_cache

    cfg = AquaKVConfig()
    methods = {
        "fp16 DynamicCache": lambda: None,
        "AQUA-KV fused": lambda: AquaKVCache(model, preds, cfg, check_fingerprint=False),
        "AQUA-KV torch reference": lambda: AquaKVCache(
            model, preds, cfg, backend="torch", check_fingerprint=False
        ),
        "HIGGS-only fused": lambda: AquaKVCache(model, None, cfg),
        "KIVI-2 g32 r128": lambda: KIVICache(model, 2, 32, 128),
        "AQUA-KV keep-dequantized (no memory saving)": lambda: AquaKVCache(
            model, preds, cfg, keep_dequantized=True, check_fingerprint=False
        ),
    }
    if hf_quantized_cache(model, 2) is not None:
        methods["transformers QuantizedCache int2"] = lambda: hf_quantized_cache(model, 2)
    else:
        print("transformers QuantizedCache: no backend (optimum-quanto / hqq) installed; skipped")
    return methods


def prefilled(model, make, ids, chunk=4096):
    """The cache from factory ``make`` (``None``: a fp16 ``DynamicCache``) holding ``ids [1, T]``,
    fed ``chunk`` tokens at a time (the AQUA-KV and KIVI caches quantize as they go)."""
    from transformers import DynamicCache

    from papercore.llm.hf_compat import cache_kwarg

    cache = make() or DynamicCache(config=model.config)
    key = cache_kwarg(model)
    for s in range(0, ids.shape[1], chunk):
        model(input_ids=ids[:, s : s + chunk], use_cache=True, **{key: cache}, logits_to_keep=1)
    return cache


@torch.no_grad()
def main() -> int:
    args = parser(__doc__).parse_args()
    quick = args.quick
    if not quick and not torch.cuda.is_available():
        print("bench_decode: no CUDA device (use --quick for the CPU check)")
        return 1
    from aquakv.cache import AquaKVCache
    from aquakv.config import AquaKVConfig
    from aquakv.kernels import decode_predict_torch
    from aquakv.quantizer import HiggsQuantizer
    from papercore.llm.hf_compat import cache_kwarg

    dev = torch.device("cpu" if quick else "cuda")
    dtype = torch.float32 if quick else torch.float16
    failures: list[str] = []

    # ---- correctness of the fused kernel on the real shape, before any timing
    if not quick:
        from aquakv.kernels.fused import decode_predict_triton

        C = 1024
        q = HiggsQuantizer(C, 2, 16)
        rows = q.quantize(torch.randn(4096, C, device=dev)).map(lambda t: t)
        x = torch.randn(4096, 2 * C, device=dev, dtype=dtype)
        w = (torch.randn(C, 2 * C, device=dev) / 45).to(dtype)
        b = torch.randn(C, device=dev).to(dtype)
        ref = decode_predict_torch(rows, q, x, w, b)
        for odt in (torch.float32, torch.float16):  # fp16: the Hadamard product on fp16 tensor cores
            got = decode_predict_triton(rows, q, x[:, :C], w, b, x2=x[:, C:], out_dtype=odt).float()
            err = ((got - ref).norm() / ref.norm()).item()
            if not err < 5e-3:
                print(f"ABORT: fused decode kernel ({odt}) relative error {err:.2e} vs the torch reference")
                return 2
            print(f"check ok: fused kernel ({odt}) vs torch reference, relative error {err:.1e}")
        from aquakv.kernels.quantize import quantize_triton

        xr = torch.randn(4096, C, device=dev) * torch.rand(4096, 1, device=dev) * 3
        qr, qg = q.quantize(xr), quantize_triton(q, xr)
        agree = (q.unpack(qr.codes) == q.unpack(qg.codes)).float().mean().item()
        serr = ((qg.scales.float() - qr.scales.float()).abs().max()).item()
        if not (agree >= 0.999 and serr == 0.0):
            print(f"ABORT: fused quantize kernel: {agree:.4%} codes agree, scale error {serr:.1e}")
            return 2
        print(f"check ok: fused quantize kernel vs torch reference, {agree:.4%} of codes agree")

    model = build_model(quick, dev, dtype)
    L, H = model.config.num_hidden_layers, model.config.num_key_value_heads
    D = model.config.head_dim
    C = H * D
    preds = random_predictors(L, C)
    key = cache_kwarg(model)
    contexts = [64, 200] if quick else [int(c) for c in args.contexts.split(",")]
    prefill_chunk = 64 if quick else 4096
    base_cfg = AquaKVConfig()
    methods = cache_methods(model, preds)

    # correctness of the whole cache: fused vs torch path give the same next-token logits
    def check_cache():
        ids = torch.randint(0, model.config.vocab_size, (1, 600 if not quick else 150), device=dev)
        outs = []
        for backend in ("auto", "torch"):
            c = AquaKVCache(model, preds, base_cfg, backend=backend, check_fingerprint=False)
            model(input_ids=ids[:, :-1], use_cache=True, **{key: c})
            outs.append(model(input_ids=ids[:, -1:], use_cache=True, **{key: c}).logits.float())
        err = ((outs[0] - outs[1]).norm() / outs[1].norm()).item()
        if not err < 2e-2:
            raise AssertionError(f"fused vs torch AQUA-KV logits differ: relative error {err:.2e}")
        print(f"check ok: AQUA-KV cache fused vs torch path, logits relative error {err:.1e}")

    if guarded("cache check", check_cache, failures) is None and failures:
        print("ABORT:", failures[-1])
        return 2

    results = {}
    t_start = time.perf_counter()
    for T in contexts:
        for name, make in methods.items():
            if time.perf_counter() - t_start > 300:
                failures.append(f"{name} @ {T}: skipped (time budget)")
                continue

            def run(T=T, make=make):
                # the previous cache may sit in a reference cycle: collect it before measuring from here
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated() if dev.type == "cuda" else 0
                ids = torch.randint(0, model.config.vocab_size, (1, T), device=dev)
                cache = prefilled(model, make, ids, prefill_chunk)
                tok = ids[:, -1:]
                step = lambda i: model(input_ids=tok, use_cache=True, **{key: cache}, logits_to_keep=1)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    ms = cuda_time_ms(step, warmup=3, rep=10 if T > 10000 else 20)
                    peak = torch.cuda.max_memory_allocated() - base
                else:
                    t = time.perf_counter()
                    for i in range(4):
                        step(i)
                    ms, peak = (time.perf_counter() - t) / 4 * 1e3, 0
                return ms, peak, cache_bytes(cache)

            out = guarded(f"{name} @ {T}", run, failures)
            if out is not None:
                results[(T, name)] = out
                print(
                    f"  T={T:>6} {name:<44} {out[0]:8.2f} ms/step  peak {out[1] / 2**20:9.1f} MiB  KV {out[2] / 2**20:9.1f} MiB"
                )

    hw, date, cmd = hardware(), today(), command_line()
    entries = []
    for (T, name), (ms, peak, kv) in results.items():
        base = results.get((T, "fp16 DynamicCache"))
        if base is None:
            continue
        entries.append(Entry(f"decode step, 3B-shaped fp16 model, context {T}, {name}", "time_ms", ms,
                             "fp16 DynamicCache", base[0], base[0] / ms, hw, date, cmd))  # fmt: skip
        entries.append(Entry(f"KV cache bytes, context {T}, {name}", "MiB", kv / 2**20,
                             "fp16 DynamicCache", base[2] / 2**20, base[2] / kv if kv else 0, hw, date, cmd))  # fmt: skip
        if dev.type == "cuda":
            entries.append(Entry(f"peak memory above weights during decode, context {T}, {name}", "MiB", peak / 2**20,
                                 "fp16 DynamicCache", base[1] / 2**20, base[1] / peak if peak else 0, hw, date, cmd))  # fmt: skip
    json_path = (
        args.json if args.json is not None else (None if quick else str(ROOT / "docs/benchmarks/aquakv.json"))
    )
    write_results(
        entries, json_path, "aquakv: decode latency and memory (Llama-3.2-3B shape, random weights)"
    )
    if args.out and json_path:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_results(entries, str(Path(args.out) / "aquakv_decode.json"), "aquakv decode")
    for f in failures:
        print("FAILED:", f)
    return 0


if __name__ == "__main__":
    with fair_sdpa():
        sys.exit(main())
