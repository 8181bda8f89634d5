"""Quality of AQUA-KV against its ablation and KIVI on the zoo `small` model (chunked-feeding perplexity),
plus calibration time (measured on `small`, and timed on an 8B-shaped layer for an extrapolation).

GPU: PYTHONPATH=$PWD/shared/src:$PWD/packages/aquakv/src python packages/aquakv/benchmarks/bench_quality.py --out $OUT
CPU check: ... bench_quality.py --quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, guarded, parser  # noqa: E402

from papercore.bench import Entry, command_line, hardware, today, write_results  # noqa: E402


def main() -> int:
    args = parser(__doc__).parse_args()
    quick = args.quick
    if not quick and not torch.cuda.is_available():
        print("bench_quality: no CUDA device (use --quick for the CPU check)")
        return 1
    import logging

    logging.getLogger("papercore").setLevel(logging.WARNING)
    from aquakv.cache import AquaKVCache
    from aquakv.calibrate import calibrate
    from aquakv.config import AquaKVConfig, CalibrationConfig
    from aquakv.evaluate import cache_factory, chunked_perplexity, storage_report
    from aquakv.predictors import Predictors, RidgeAccumulator
    from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer
    from papercore.llm import zoo
    from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream

    dev = torch.device("cpu" if quick else "cuda")
    torch.manual_seed(0)
    failures: list[str] = []
    recipe = "tiny" if quick else "small"
    t0 = time.perf_counter()
    path = zoo.load_path(recipe, device=dev)
    train_s = time.perf_counter() - t0
    model, tok = zoo.load(recipe)
    model = model.to(dev)
    model.config._attn_implementation = "sdpa"
    seqlen = 256 if quick else 512
    n_cal, n_val, n_test = (8, 2, 4) if quick else (128, 16, 64)
    print(f"model {path} (ready in {train_s:.1f} s); calibration {n_cal}x{seqlen}, test {n_test}x{seqlen}")
    test = eval_windows(get_eval_stream("stdlib", tok), seqlen, max_windows=n_test)
    L = model.config.num_hidden_layers
    C = model.config.num_key_value_heads * (
        getattr(model.config, "head_dim", None)
        or model.config.hidden_size // model.config.num_attention_heads
    )

    # ---- correctness first: identity quantizer + zero predictors == the plain cache under chunked feeding
    ref_ppl, _ = chunked_perplexity(model, test[:2], None)
    ident = lambda: AquaKVCache(model, Predictors.zeros(L, C), AquaKVConfig(), quantizer=IdentityQuantizer(C),
                                first_quantizer=IdentityQuantizer(C), check_fingerprint=False)  # fmt: skip
    got_ppl, _ = chunked_perplexity(model, test[:2], ident)
    if abs(got_ppl - ref_ppl) / ref_ppl > 1e-4:
        print(f"ABORT: identity AQUA-KV cache perplexity {got_ppl} != plain cache {ref_ppl}")
        return 2
    print(f"check ok: identity cache {got_ppl:.4f} == plain cache {ref_ppl:.4f}")

    # ---- calibration (2 bits, and 3 bits)
    windows = get_calibration_data("stdlib", tok, n_cal + n_val, seqlen, seed=0)
    configs = {"aquakv-2bit": AquaKVConfig(), "aquakv-3bit": AquaKVConfig(edenn_n=64)}
    preds, cal_seconds = {}, {}
    for name, cfg in configs.items():

        def run(cfg=cfg):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            r = calibrate(
                model, windows, cfg, CalibrationConfig(valid_nsamples=n_val), progress=False, device=dev
            )
            return r, time.perf_counter() - t

        out = guarded(f"calibrate {name}", run, failures)
        if out is not None:
            preds[name], cal_seconds[name] = out[0].predictors, out[1]
            for rep in out[0].layers:
                print(
                    f"  {name} layer {rep.layer}: pred relMSE K {rep.key_pred_rel_mse} V {rep.value_pred_rel_mse}; "
                    f"after quantization K {rep.key_rel_mse:.4f} V {rep.value_rel_mse:.4f}"
                )

    # ---- chunked-feeding perplexity of every method
    runs = [
        ("fp16 cache", "fp16", None, AquaKVConfig()),
        ("AQUA-KV (2,16) + 4-bit layer 0", "aquakv", preds.get("aquakv-2bit"), configs["aquakv-2bit"]),
        ("HIGGS-only (2,16) + 4-bit layer 0", "higgs", None, configs["aquakv-2bit"]),
        ("AQUA-KV (2,64) 3-bit", "aquakv", preds.get("aquakv-3bit"), configs["aquakv-3bit"]),
        ("HIGGS-only (2,64) 3-bit", "higgs", None, configs["aquakv-3bit"]),
        ("KIVI-2 g32 r128", "kivi2", None, AquaKVConfig()),
        ("KIVI-4 g32 r128", "kivi4", None, AquaKVConfig()),
        ("transformers QuantizedCache 2-bit", "hf-quantized2", None, AquaKVConfig()),
    ]
    results = {}
    for label, method, p, cfg in runs:

        def run(method=method, p=p, cfg=cfg):
            if method == "aquakv" and p is None:
                raise RuntimeError("no predictors (calibration failed)")
            f = cache_factory(method, model, p, cfg)
            ppl, cache = chunked_perplexity(model, test, f, chunk_size=32, batch_size=8)
            return ppl, storage_report(model, cache, cfg)

        out = guarded(label, run, failures)
        if out is not None:
            results[label] = out
            bits = out[1].get("bits_per_value", 16.0)
            print(f"  {label:<36} ppl {out[0]:.4f}  {bits:.3f} bits/value")

    hw, date, cmd = hardware(), today(), command_line()
    entries = []
    base = results.get("fp16 cache", (float("nan"), {}))[0]
    for label, (ppl, rep) in results.items():
        bits = rep.get("bits_per_value", 16.0)
        entries.append(Entry(f"{recipe} chunked-32 ppl, {label}, {bits:.3f} bits/value (KV of {n_test}x{seqlen} windows)",
                             "perplexity", ppl, "fp16 cache", base, base / ppl, hw, date, cmd))  # fmt: skip
    for name, s in cal_seconds.items():
        entries.append(Entry(f"calibration time {recipe} {name} ({n_cal + n_val}x{seqlen} tokens, {L} layers)",
                             "seconds", s, "zoo training time (cached if 0)", train_s, train_s / s if s else 0, hw, date, cmd))  # fmt: skip

    # ---- calibration cost of one 8B-shaped layer (C=1024), timed, extrapolated to 256x8192 tokens x 32 layers
    def layer_time():
        Cb, tokens = (64, 4096) if quick else (1024, 65536)
        q = HiggsQuantizer(Cb, 2, 16)
        kprev, vprev, k, v = (torch.randn(tokens, Cb, device=dev) for _ in range(4))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        acc = RidgeAccumulator(Cb, Cb, device=dev)
        acc.update(kprev, k)
        w, b = acc.solve()
        p = kprev @ w.T + b
        kh = p + q(k - p)
        x = torch.cat([kh, vprev], 1)
        acc = RidgeAccumulator(2 * Cb, Cb, device=dev)
        acc.update(x, v)
        w, b = acc.solve()
        p = x @ w.T + b
        p + q(v - p)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, tokens

    lt = guarded("8B layer timing", layer_time, failures)
    if lt is not None:
        sec, tokens = lt
        est = (
            sec * (256 * 8192 / tokens) * 32 / 3600
        )  # fitting + quantization only; the forward passes add to it
        print(
            f"  8B-shaped layer: {sec:.2f} s for {tokens} tokens -> ~{est:.2f} h for 256x8192 tokens x 32 layers"
        )
        entries.append(Entry(f"calibration extrapolated to Llama-3.1-8B (32 layers, C=1024, 256x8192 tokens; fit+quantize only, from {tokens} tokens)",
                             "hours", est, "paper's claimed 1-6 GPU-hours (lower end)", 1.0, 1.0 / est if est else 0, hw, date, cmd))  # fmt: skip

    json_path = (
        args.json
        if args.json is not None
        else (None if quick else str(ROOT / "docs/benchmarks/aquakv_quality.json"))
    )
    write_results(entries, json_path, "aquakv: quality (chunked-feeding perplexity) and calibration time")
    if args.out and json_path:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_results(entries, str(Path(args.out) / "aquakv_quality.json"), "aquakv quality")
    for f in failures:
        print("FAILED:", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
