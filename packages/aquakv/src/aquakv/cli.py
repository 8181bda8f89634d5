"""``aquakv`` command line: ``calibrate``, ``eval``, ``generate``, ``grids``, ``info``, ``demo``.

Commands take the library's configs whole (every field of :class:`AquaKVConfig` and
:class:`CalibrationConfig` is a flag and a ``--config`` key); paths, models and evaluation sizes
are run options. Every command runs with no data arguments on the zoo ``tiny`` model and the
offline stdlib corpus.
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
from aquakv.config import AquaKVConfig, CalibrationConfig
from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config

log = logging.getLogger(__name__)


@dataclass
class CalibrateOptions:
    """Run options of ``aquakv calibrate`` (the method's options are AquaKVConfig and CalibrationConfig)."""

    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    max_chars: int | None = field(
        default=None,
        metadata={"help": "tokenize only a seeded subset of about this many characters of the corpus "
                  "(default: all of it; large corpora: 32 per window token)"},
    )  # fmt: skip
    out: Path | None = field(default=None, metadata={"help": "output folder (default: a new temporary one)"})
    resume: bool = field(default=False, metadata={"help": "reuse the layers already saved in OUT/layers"})
    offload: bool = field(
        default=False, metadata={"help": "keep activations and reconstructions on the CPU between layers"}
    )
    plot: bool = field(
        default=True,
        metadata={
            "help": "write report.png (each layer's prediction and reconstruction errors) next to report.json"
        },
    )


def _load(spec: str, common: CommonOptions):
    from papercore.llm.zoo import load_model

    return load_model(spec, device=common.torch_device)


def calibrate_cmd(
    cfg: AquaKVConfig, calib: CalibrationConfig, opts: CalibrateOptions, common: CommonOptions
) -> int:
    """Fit the predictors; write OUT/predictors.{safetensors,json}, OUT/report.json, OUT/resolved_config.json."""
    from aquakv.cache import kv_layout
    from aquakv.calibrate import calibrate, calibration_windows
    from papercore.io import write_json

    calib = calib.resolved(small=opts.model.startswith("zoo:"))
    out = opts.out
    if out is not None and out.exists() and any(out.iterdir()) and not opts.resume:
        raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume)")
    if opts.resume and out is not None:
        check_resume(out, cfg, calib)  # another config in OUT: one line, exit 2, nothing written
    model, tok, src = _load(opts.model, common)
    layers, heads, hd = kv_layout(model.config)
    cfg.resolved_group(heads * hd)  # bad group sizes before any work
    out = out or Path(tempfile.mkdtemp(prefix="aquakv-"))
    windows = calibration_windows(
        tok, calib, dataset=opts.dataset, seed=common.seed, max_chars=opts.max_chars
    )
    print(
        f"calibrating AQUA-KV predictors for {src} ({layers} layers, {heads * hd} KV channels) on "
        f"{calib.nsamples}x{calib.seqlen} tokens ({calib.valid_nsamples} windows held out)"
    )
    write_resolved_config(out, cfg, calib, opts, common=common)
    res = calibrate(model, windows, cfg, calib, out_dir=out, resume=opts.resume, offload=opts.offload,
                    device=common.torch_device)  # fmt: skip
    res.predictors.save(out)
    rows = [r.as_dict() for r in res.layers]
    write_json(out / "report.json", {"model": str(src), "seconds": res.seconds, "layers": rows,
                                     "config": cfg.to_dict(), "calibration": calib.to_dict()})  # fmt: skip
    if opts.plot:
        plot_report(rows, out / "report.png", title=f"AQUA-KV predictors of {src}")
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


def plot_report(rows: list[dict], path: Path, title: str = "") -> Path:
    """Per layer: relative MSE of the predicted keys and values (before quantizing the residual) and
    of the final reconstructions, on the held-out windows."""
    from papercore.plot import curves

    keys = ("key_pred_rel_mse", "value_pred_rel_mse", "key_rel_mse", "value_rel_mse")
    records = [{"layer": r["layer"], **{k: r[k] for k in keys if r.get(k) is not None}} for r in rows]
    return curves(records, path, keys, x="layer", title=title)


@dataclass
class EvalOptions:
    """Run options of ``aquakv eval`` (the cache's options are AquaKVConfig)."""

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
    batch_size: int = field(default=4, metadata={"help": "windows per forward"})


def _predictors(path, model, tok, cfg, common):
    from aquakv.evaluate import builtin_predictors, load_predictors

    if path is not None:
        return load_predictors(path, model)
    print(
        "no --predictors: using built-in predictors (calibrated on the stdlib corpus on first use, then cached)"
    )
    return builtin_predictors(model, cfg, tok, seed=common.seed, device=common.torch_device, progress=True)


def eval_cmd(cfg: AquaKVConfig, opts: EvalOptions, common: CommonOptions) -> int:
    """Chunked-feeding perplexity, bits per value and measured bytes per token of each method."""
    from aquakv.evaluate import METHODS, cache_factory, chunked_perplexity, storage_report
    from papercore.llm.data import eval_windows, get_eval_stream

    bad = [m for m in opts.methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown method(s) {', '.join(bad)}: choose from {', '.join(METHODS)}")
    if opts.chunk_size < 1 or opts.seqlen < 2:
        raise UserError("--chunk-size must be >= 1 and --seqlen >= 2")
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
class GenerateOptions:
    """Run options of ``aquakv generate`` (the cache's options are AquaKVConfig)."""

    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    predictors: Path | None = field(
        default=None, metadata={"help": "folder from `aquakv calibrate` (default: built-in)"}
    )
    prompt: str = field(
        default="import os\n\ndef read_config(path):\n", metadata={"help": "text to continue"}
    )
    max_new_tokens: int = field(default=200, metadata={"help": "tokens to generate (greedy)"})
    method: Literal["aquakv", "higgs"] = field(
        default="aquakv", metadata={"help": "aquakv (with predictors) or higgs (without)"}
    )


def generate_cmd(cfg: AquaKVConfig, opts: GenerateOptions, common: CommonOptions) -> int:
    """Greedy generation with an AQUA-KV cache; prints the text and the KV memory against fp16."""
    import torch

    from aquakv.cache import AquaKVCache, kv_layout
    from aquakv.config import config_bytes_per_token
    from papercore.llm.hf_compat import cache_kwarg

    if opts.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
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
        f"{n - mem['quantized_tokens']} in the buffer; buffer and the {min(cfg.prefix_size, n)} sink tokens in the "
        f"model dtype: {mem['fp']:,} B"
    )
    print(
        f"--- KV cache {ours:,} B vs {2 * L * H * D * 2 * n:,} B in fp16 ({2 * L * H * D * elt * n:,} B in the model dtype); "
        f"predictors {mem['predictors']:,} B"
    )
    return 0


@dataclass
class GridOptions:
    """Run options of ``aquakv grids``."""

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
    return eval_cmd(AquaKVConfig(), opts, common)


app = CLI(
    "aquakv",
    "AQUA-KV: KV-cache compression with inter-layer predictors and HIGGS vector quantization.",
    [
        Command("calibrate", calibrate_cmd, "fit the inter-layer predictors of a model",
                config=(AquaKVConfig, CalibrationConfig), options=CalibrateOptions),
        Command("eval", eval_cmd, "chunked-feeding perplexity, bits and bytes of each cache method",
                config=AquaKVConfig, options=EvalOptions),
        Command("generate", generate_cmd, "generate with an AQUA-KV cache and report the memory",
                config=AquaKVConfig, options=GenerateOptions),
        Command("grids", grids_cmd, "list the grids; generate and cache one (--d 6 --n 4096)", options=GridOptions),
        Command("info", info, "version, grids and the storage of common shapes"),
        Command("demo", demo, "calibrate the built-in tiny model and compare the cache methods"),
    ],
    version=__version__,
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return app.main(argv or ["demo"])
    except NotImplementedError as e:  # an unsupported model (papercore raises these too): a user error
        print(f"aquakv: error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
