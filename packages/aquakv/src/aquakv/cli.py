"""``aquakv`` command line: ``calibrate``, ``eval``, ``generate``, ``info``, ``demo``.

Every command runs with no data arguments on the zoo ``tiny`` model and the offline stdlib corpus.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aquakv import __version__
from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config

log = logging.getLogger(__name__)


@dataclass
class QuantOptions:
    edenn_d: int = field(default=2, metadata={"help": "grid dimension d"})
    edenn_n: int = field(default=16, metadata={"help": "grid size n"})
    group_size: int | None = field(
        default=None, metadata={"help": "Hadamard group (default: all KV channels)"}
    )
    first_layer_bits: int = field(default=4, metadata={"help": "layer 0: 2, 3, 4 bits or 16 (fp16)"})
    scale_dtype: str = "float16"
    prefix_size: int = field(default=4, metadata={"help": "attention-sink tokens kept unquantized"})
    buffer_size: int = field(default=128, metadata={"help": "recent tokens kept unquantized"})

    def aquakv_config(self):
        from aquakv.config import AquaKVConfig

        names = (
            "edenn_d",
            "edenn_n",
            "group_size",
            "first_layer_bits",
            "scale_dtype",
            "prefix_size",
            "buffer_size",
        )
        return AquaKVConfig(**{n: getattr(self, n) for n in names})


@dataclass
class CalibrateOptions(QuantOptions):
    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    out: Path | None = field(default=None, metadata={"help": "output folder (default: a new temporary one)"})
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    nsamples: int | None = field(
        default=None, metadata={"help": "calibration windows (default 256; zoo: 32)"}
    )
    seqlen: int | None = field(default=None, metadata={"help": "tokens per window (default 8192; zoo: 256)"})
    valid_nsamples: int | None = field(
        default=None, metadata={"help": "held-out windows (default 32; zoo: 4)"}
    )
    percdamp: float = field(default=1e-3, metadata={"help": "ridge, as a fraction of mean diag(X^T X)"})
    resume: bool = field(default=False, metadata={"help": "reuse the layers already saved in OUT/layers"})
    offload: bool = field(default=False, metadata={"help": "keep activations on the CPU between layers"})


def _sizes(opts: CalibrateOptions):
    zoo = opts.model.startswith("zoo:")
    n = opts.nsamples or (32 if zoo else 256)
    L = opts.seqlen or (256 if zoo else 8192)
    v = opts.valid_nsamples if opts.valid_nsamples is not None else (4 if zoo else 32)
    if n < 2 or L < 2 or not 0 <= v < n:
        raise UserError(
            f"need --nsamples >= 2, --seqlen >= 2 and 0 <= --valid-nsamples < nsamples; got {n}, {L}, {v}"
        )
    return n, L, v


def _load(spec: str, common: CommonOptions):
    from papercore.llm.zoo import load_model

    return load_model(spec, device=common.torch_device)


def calibrate_cmd(opts: CalibrateOptions, common: CommonOptions) -> int:
    """Fit the predictors; write OUT/predictors.{safetensors,json}, OUT/report.json, OUT/resolved_config.json."""
    from aquakv.cache import kv_layout
    from aquakv.calibrate import calibrate
    from papercore.io import write_json
    from papercore.llm.data import get_calibration_data

    cfg = opts.aquakv_config()
    n, L, v = _sizes(opts)
    out = opts.out
    if out is not None and out.exists() and any(out.iterdir()) and not opts.resume:
        raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume)")
    model, tok, src = _load(opts.model, common)
    layers, heads, hd = kv_layout(model.config)
    cfg.resolved_group(heads * hd)  # bad group sizes before any work
    out = out or Path(tempfile.mkdtemp(prefix="aquakv-"))
    windows = get_calibration_data(opts.dataset, tok, n, L, seed=common.seed)
    print(
        f"calibrating AQUA-KV predictors for {src} ({layers} layers, {heads * hd} KV channels) on {n}x{L} tokens"
    )
    res = calibrate(model, windows, cfg, percdamp=opts.percdamp, valid_nsamples=v, out_dir=out,
                    resume=opts.resume, offload=opts.offload, device=common.torch_device)  # fmt: skip
    res.predictors.save(out)
    rows = [r.as_dict() for r in res.layers]
    write_json(out / "report.json", {"model": str(src), "seconds": res.seconds, "layers": rows,
                                     "config": cfg.to_dict(), "percdamp": opts.percdamp})  # fmt: skip
    write_resolved_config(out, opts, common)
    fmt = lambda x: "   -  " if x is None else f"{x:.4f}"
    print("layer  key pred relMSE (bits)   value pred relMSE (bits)   key/value relMSE after quantization")
    for r in rows:
        kb = "" if r["key_pred_equiv_bits"] is None else f"({r['key_pred_equiv_bits']:.2f})"
        vb = "" if r["value_pred_equiv_bits"] is None else f"({r['value_pred_equiv_bits']:.2f})"
        print(
            f"{r['layer']:>5}  {fmt(r['key_pred_rel_mse'])} {kb:<8}        {fmt(r['value_pred_rel_mse'])} {vb:<8}"
            f"          {r['key_rel_mse']:.4f} / {r['value_rel_mse']:.4f}{'  (resumed)' if r['resumed'] else ''}"
        )
    print(f"saved {out} ({res.seconds:.1f} s, {res.predictors.num_parameters():,} predictor parameters)")
    return 0


@dataclass
class EvalOptions(QuantOptions):
    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    predictors: Path | None = field(
        default=None, metadata={"help": "folder from `aquakv calibrate` (default: built-in)"}
    )
    methods: tuple[str, ...] = field(default=("fp16", "aquakv", "higgs", "kivi2"),
                                     metadata={"help": "aquakv, higgs, kivi2, kivi4, hf-quantized2, fp16"})  # fmt: skip
    dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    seqlen: int = field(default=256, metadata={"help": "tokens per evaluation window"})
    windows: int | None = field(default=16, metadata={"help": "evaluation windows (None: the whole split)"})
    chunk_size: int = field(
        default=32, metadata={"help": "tokens fed per forward (chunked-feeding protocol)"}
    )
    batch_size: int = 4


def _predictors(path, model, tok, cfg, common):
    from aquakv.evaluate import builtin_predictors, load_predictors

    if path is not None:
        return load_predictors(path, model)
    print(
        "no --predictors: using built-in predictors (calibrated on the stdlib corpus on first use, then cached)"
    )
    return builtin_predictors(model, cfg, tok, seed=common.seed, device=common.torch_device, progress=True)


def eval_cmd(opts: EvalOptions, common: CommonOptions) -> int:
    """Chunked-feeding perplexity, bits per value and measured bytes per token of each method."""
    from aquakv.evaluate import METHODS, cache_factory, chunked_perplexity, storage_report
    from papercore.llm.data import eval_windows, get_eval_stream

    bad = [m for m in opts.methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}")
    if opts.chunk_size < 1 or opts.seqlen < 2:
        raise UserError("--chunk-size must be >= 1 and --seqlen >= 2")
    cfg = opts.aquakv_config()
    model, tok, src = _load(opts.model, common)
    preds = _predictors(opts.predictors, model, tok, cfg, common) if "aquakv" in opts.methods else None
    test = eval_windows(get_eval_stream(opts.dataset, tok), opts.seqlen, max_windows=opts.windows)
    print(
        f"{src}: chunked-feeding perplexity ({opts.chunk_size} tokens per forward) on {tuple(test.shape)} windows"
    )
    results = {}
    for m in opts.methods:
        try:
            factory = cache_factory(m, model, preds, cfg)
        except RuntimeError as e:
            print(f"  {m:<14} skipped: {e}")
            continue
        t0 = time.perf_counter()
        ppl, cache = chunked_perplexity(
            model, test, factory, chunk_size=opts.chunk_size, batch_size=opts.batch_size, progress=True
        )
        rep = storage_report(model, cache, cfg)
        rep.pop("memory", None)
        results[m] = {"perplexity": ppl, "seconds": round(time.perf_counter() - t0, 2), **rep}
        bits = (
            f"{rep['bits_per_value']:.3f} bits/value, {rep['measured_bytes_per_token']:.0f} B/token"
            if "bits_per_value" in rep
            else "16 bits/value"
        )
        formula = f" (formula {rep['formula_bytes_per_token']})" if "formula_bytes_per_token" in rep else ""
        print(f"  {m:<14} perplexity {ppl:8.3f}   {bits}{formula}")
    print(json.dumps(results))
    return 0


@dataclass
class GenerateOptions(QuantOptions):
    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    predictors: Path | None = field(
        default=None, metadata={"help": "folder from `aquakv calibrate` (default: built-in)"}
    )
    prompt: str = "import os\n\ndef read_config(path):\n"
    max_new_tokens: int = 200
    method: Literal["aquakv", "higgs"] = "aquakv"


def generate_cmd(opts: GenerateOptions, common: CommonOptions) -> int:
    """Greedy generation with an AQUA-KV cache; prints the text and the KV memory against fp16."""
    import torch

    from aquakv.cache import AquaKVCache, kv_layout
    from aquakv.config import config_bytes_per_token
    from papercore.llm.hf_compat import cache_kwarg

    if opts.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    cfg = opts.aquakv_config()
    model, tok, src = _load(opts.model, common)
    preds = _predictors(opts.predictors, model, tok, cfg, common) if opts.method == "aquakv" else None
    cache = AquaKVCache(model, preds, cfg)
    ids = tok(opts.prompt, return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=opts.max_new_tokens, min_new_tokens=opts.max_new_tokens,
                             do_sample=False, repetition_penalty=1.2, **{cache_kwarg(model): cache},
                             pad_token_id=tok.pad_token_id)  # fmt: skip
    print(opts.prompt + tok.decode(out[0][ids.shape[1] :]))
    L, H, D = kv_layout(model.config)
    mem = cache.memory()
    n = cache.get_seq_length()
    elt = next(model.parameters()).element_size()
    ours = mem["quantized"] + mem["fp"]
    print(
        f"--- {n} tokens cached: {mem['quantized_tokens']} quantized ({mem['quantized']:,} B packed codes + scales, "
        f"formula {config_bytes_per_token(cfg, L, H * D) * mem['quantized_tokens']:,} B), "
        f"{n - mem['quantized_tokens']} in the sink/buffer ({mem['fp']:,} B)"
    )
    print(
        f"--- KV cache {ours:,} B vs {2 * L * H * D * 2 * n:,} B in fp16 ({2 * L * H * D * elt * n:,} B in the model dtype); "
        f"predictors {mem['predictors']:,} B"
    )
    return 0


@dataclass
class GridOptions:
    d: int | None = field(default=None, metadata={"help": "grid dimension (with --n: generate that grid)"})
    n: int | None = field(default=None, metadata={"help": "grid size, a power of two"})
    grid_seed: int = field(default=0, metadata={"help": "seed of the Gaussian samples"})


def grids_cmd(opts: GridOptions, common: CommonOptions) -> int:
    """List the grids and where they are; with --d and --n generate (once) and cache one."""
    from aquakv.grids import (
        SUPPORTED,
        _find,
        bits_per_value,
        cache_folder,
        ensure_grid,
        get_grid,
        monte_carlo_mse,
    )

    if (opts.d is None) != (opts.n is None):
        raise UserError("pass both --d and --n to generate a grid (or neither to list them)")
    if opts.d is None:
        for d, n in SUPPORTED:
            where = _find(d, n, opts.grid_seed)
            print(f"  ({d}, {n}): {bits_per_value(d, n):.2f} bits/value  {where or 'not generated yet'}")
        print(
            f"generate one with: aquakv grids --d 6 --n 4096 [--device cuda]   (cached under {cache_folder()})"
        )
        return 0
    if opts.d < 1 or opts.n < 2 or opts.n & (opts.n - 1):
        raise UserError(f"need --d >= 1 and --n a power of two >= 2, got d={opts.d}, n={opts.n}")
    t0 = time.perf_counter()
    path = ensure_grid(opts.d, opts.n, seed=opts.grid_seed, device=common.torch_device)
    mse = monte_carlo_mse(get_grid(opts.d, opts.n, seed=opts.grid_seed), 200_000)
    print(
        f"grid ({opts.d}, {opts.n}): per-dimension Gaussian MSE {mse:.5f}; {path} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0


def info(common: CommonOptions) -> int:
    """Version, grids and the bytes per token of common shapes."""
    from aquakv.config import bytes_per_token
    from aquakv.grids import SUPPORTED, _find, bits_per_value

    print(f"aquakv {__version__}")
    for d, n in SUPPORTED:
        where = _find(d, n, 0)
        print(
            f"  grid ({d}, {n}): {bits_per_value(d, n):.2f} bits/value  [{'available' if where else 'generated on first use'}]"
        )
    b = bytes_per_token(28, 1024)
    print(
        f"Llama-3.2-3B shape (28 layers, 1024 KV channels), defaults: {b} B/token = {8 * b / (2 * 28 * 1024):.3f} "
        f"bits/value, {114688 / b:.2f}x smaller than fp16"
    )
    return 0


def demo(common: CommonOptions) -> int:
    """Calibrate predictors for the zoo tiny model and compare chunked perplexity and storage of each method."""
    logging.getLogger("papercore").setLevel(logging.WARNING)
    info(common)
    opts = EvalOptions(windows=8, methods=("fp16", "aquakv", "higgs", "kivi2", "kivi4"))
    return eval_cmd(opts, common)


app = CLI(
    "aquakv",
    "AQUA-KV: KV-cache compression with inter-layer predictors and HIGGS vector quantization.",
    [
        Command("calibrate", calibrate_cmd, "fit the inter-layer predictors of a model", CalibrateOptions),
        Command(
            "eval", eval_cmd, "chunked-feeding perplexity, bits and bytes of each cache method", EvalOptions
        ),
        Command(
            "generate", generate_cmd, "generate with an AQUA-KV cache and report the memory", GenerateOptions
        ),
        Command("grids", grids_cmd, "list the grids; generate and cache one (--d 6 --n 4096)", GridOptions),
        Command("info", info, "version, grids and the storage of common shapes"),
        Command("demo", demo, "calibrate the built-in tiny model and compare the cache methods"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return app.main(argv or ["demo"])
    except NotImplementedError as e:  # an unsupported model (papercore raises these too): a user error
        print(f"aquakv: error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
