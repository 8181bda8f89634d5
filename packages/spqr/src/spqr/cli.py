"""``spqr`` command line: ``quantize`` (default: the zoo tiny model with the near-lossless ``w4``
preset), ``eval`` (perplexity and bits of a saved model), ``bench`` (the SpQR layer against a
dense ``F.linear``), ``info`` and ``demo``.

``quantize`` and ``bench`` take the method's config, :class:`spqr.SpQRConfig`, whole: every field is
a flag (``--wbits``, ``--outlier-threshold``, ...) and a ``--config FILE`` key, on top of
``--preset`` (:data:`spqr.PRESETS`); the run options (model, output folder, calibration data,
evaluation) are separate dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from papercore.cli import CLI, Command, CommonOptions, Preset, UserError, check_resume, write_resolved_config
from papercore.llm.metrics import corpus_perplexity
from papercore.llm.zoo import load_model
from spqr import __version__
from spqr.config import PRESETS, SpQRConfig, preset_values

log = logging.getLogger(__name__)

BLOCKS = ".blocks"  # per-block checkpoints of a run, inside its output folder

PRESET = Preset(
    "preset",
    preset_values,
    help=f"named settings of the config fields ({', '.join(PRESETS)}); the flags below override them",
    default="w4",
)


def _describe(cfg: SpQRConfig) -> str:
    stats = (
        "fp16 stats" if cfg.qq_scale_bits == 16 else f"{cfg.qq_scale_bits}-bit stats/{cfg.qq_groupsize} rows"
    )
    tau = "no outliers" if math.isinf(cfg.outlier_threshold) else f"tau {cfg.outlier_threshold}"
    return f"{cfg.method} {cfg.wbits}-bit, groups of {cfg.groupsize}, {stats}, {tau}, {cfg.permutation_order}"


def _config_record(cfg: SpQRConfig) -> dict:
    """``cfg.to_dict()`` with an infinite threshold as null (plain JSON), as checkpoints store it."""
    d = cfg.to_dict()
    if math.isinf(d["outlier_threshold"]):
        d["outlier_threshold"] = None
    return d


@dataclass
class QuantizeOptions:
    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    out: Path | None = field(
        default=None,
        metadata={"help": "output folder; it becomes the quantized model (default: a new temporary folder)"},
    )
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    nsamples: int = field(default=64, metadata={"help": "calibration sequences"})
    seqlen: int = field(default=128, metadata={"help": "tokens per calibration (and evaluation) sequence"})
    resume: bool = field(
        default=False, metadata={"help": f"continue an interrupted run in --out (from OUT/{BLOCKS})"}
    )
    keep_blocks: bool = field(
        default=False, metadata={"help": f"keep the per-block checkpoints OUT/{BLOCKS} after the run"}
    )
    eval_dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    eval_windows: int | None = field(default=64, metadata={"help": "evaluation windows (None: all)"})
    plot: bool = field(
        default=True,
        metadata={
            "help": "write quantize.png (each linear's relative error and outliers) next to summary.json"
        },
    )


def quantize(cfg: SpQRConfig, opts: QuantizeOptions, common: CommonOptions) -> int:
    """Quantize a model block by block. OUT becomes the model (config.json, model.safetensors, the
    tokenizer), with summary.json and resolved_config.json beside; OUT/.blocks holds the per-block
    checkpoints while the run goes on (for --resume) and is removed when it completes."""
    from papercore.io import write_json
    from papercore.llm.data import get_calibration_data
    from spqr.checkpoint import save_quantized
    from spqr.quantize import check_model, model_bits, quantize_

    device = common.torch_device
    if opts.nsamples < 1 or opts.seqlen < 2:
        raise UserError(f"--nsamples must be >= 1 and --seqlen >= 2, got {opts.nsamples} and {opts.seqlen}")
    out = opts.out
    if out is not None and out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out} is a file: pass a folder")
        if opts.resume:
            check_resume(out, cfg)  # another config: one line, exit 2, nothing written
            if (out / "config.json").is_file() and not (out / BLOCKS).is_dir():
                raise UserError(
                    f"--resume {out}: that run finished ({out} holds the quantized model; its per-block "
                    "checkpoints were removed, which --keep-blocks prevents)"
                )
        elif any(out.iterdir()):
            raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume a run)")
    model, tok, src = load_model(opts.model, device=device)
    check_model(model, cfg)  # group sizes, non-finite weights: before any work
    out = out or Path(tempfile.mkdtemp(prefix="spqr-"))
    write_resolved_config(out, cfg, dataclasses.replace(opts, out=out), common=common)  # --resume checks it
    calib = get_calibration_data(opts.dataset, tok, opts.nsamples, opts.seqlen, seed=common.seed)
    print(f"quantizing {src} with SpQR ({_describe(cfg)}) on {opts.nsamples}x{opts.seqlen} tokens")
    ppl_before = corpus_perplexity(
        model, tok, opts.eval_dataset, opts.seqlen, opts.eval_windows, device=device
    )
    t0 = time.perf_counter()
    report = quantize_(model, cfg, calib, checkpoint_dir=out / BLOCKS, resume=opts.resume, device=device)
    seconds = time.perf_counter() - t0
    save_quantized(model, out, tokenizer=tok, config=cfg)
    if not opts.keep_blocks:
        shutil.rmtree(out / BLOCKS, ignore_errors=True)
    ppl_after = corpus_perplexity(
        model, tok, opts.eval_dataset, opts.seqlen, opts.eval_windows, device=device
    )
    bits = model_bits(model)
    write_json(
        out / "summary.json",
        {
            "model": str(src),
            "config": _config_record(cfg),
            "seconds": round(seconds, 1),
            "perplexity_before": ppl_before,
            "perplexity_after": ppl_after,
            "resumed_blocks": report.resumed_blocks,
            **bits,
            "eval": {"dataset": opts.eval_dataset, "seqlen": opts.seqlen, "windows": opts.eval_windows},
        },
    )
    if opts.plot:
        title = f"{src}: SpQR {_describe(cfg)}"
        if report.resumed_blocks:
            title += f"\n(blocks {report.resumed_blocks} were resumed from checkpoints: not shown)"
        plot_quantize(report, out / "quantize.png", title=title)
    print(f"saved the quantized model in {out} ({seconds:.1f} s)")
    print(f"perplexity {ppl_before:.2f} -> {ppl_after:.2f} ({opts.eval_dataset}, seqlen {opts.seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.3f} stored "
        f"({bits['formula_bits_per_parameter']:.3f} by the paper's formula), outliers "
        f"{100 * bits['outlier_share']:.2f}%"
    )
    return 0


def plot_quantize(report, path: Path, title: str = "") -> Path:
    """Each quantized linear's relative error (when measured) and share of outliers, in model order."""
    from papercore.plot import curves

    order = lambda r: tuple(int(p) if p.isdigit() else p for p in r.name.split("."))  # noqa: E731
    records = []
    for i, r in enumerate(sorted(report.layers, key=order)):
        rec = {
            "linear": i,
            "outlier_percent": 100 * r.outlier_share,
            "bits_per_parameter": r.bits_per_parameter,
        }
        if r.relative_loss is not None:
            rec["relative_error"] = r.relative_loss
        records.append(rec)
    keys = [
        k for k in ("relative_error", "outlier_percent", "bits_per_parameter") if any(k in r for r in records)
    ]
    return curves(records, path, keys, x="linear", title=title)


@dataclass
class EvalOptions:
    model: Path = field(default=Path("."), metadata={"help": "a folder written by `spqr quantize --out`"})
    dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    seqlen: int = field(default=128, metadata={"help": "tokens per evaluation window"})
    windows: int | None = field(default=None, metadata={"help": "evaluation windows (None: the whole split)"})


def evaluate(opts: EvalOptions, common: CommonOptions) -> int:
    """Perplexity and bits of a saved SpQR model."""
    from papercore.llm.data import load_tokenizer
    from spqr.checkpoint import load_quantized
    from spqr.quantize import model_bits

    path = opts.model
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"  # a run folder of spqr 0.1, which put the model in OUT/model
    if not (path / "config.json").is_file():
        raise UserError(
            f"--model {opts.model}: no config.json there; pass a folder written by `spqr quantize`"
        )
    model = load_quantized(path, device=common.torch_device)
    tok = load_tokenizer(path)
    ppl = corpus_perplexity(model, tok, opts.dataset, opts.seqlen, opts.windows, device=common.torch_device)
    bits = model_bits(model)
    print(f"perplexity {ppl:.3f} ({opts.dataset}, seqlen {opts.seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.4f} stored in quantized linears "
        f"({bits['formula_bits_per_parameter']:.4f} by the formula), {bits['model_bits_per_parameter']:.4f} "
        f"for the whole model; outliers {100 * bits['outlier_share']:.2f}%"
    )
    print(json.dumps({"perplexity": ppl, **bits}))
    return 0


@dataclass
class BenchOptions:
    shape: tuple[int, int] = field(default=(4096, 4096), metadata={"help": "in_features out_features"})
    tokens: int = field(default=1, metadata={"help": "rows of x (tokens of a batch)"})
    outlier_share: float = field(default=0.01, metadata={"help": "fraction of weights stored as outliers"})
    repeats: int = field(default=20, metadata={"help": "timed calls (the median is reported)"})


def bench(cfg: SpQRConfig, opts: BenchOptions, common: CommonOptions) -> int:
    """Time a SpQR layer (random codes and statistics of ``cfg``'s format, in the kernel layout it
    holds after loading) against a dense F.linear of the same shape on the current device."""
    import statistics

    import torch
    import torch.nn.functional as F

    from spqr.kernels import select_path
    from spqr.quantized_linear import QuantizedLinear

    if opts.tokens < 1 or opts.repeats < 1 or not 0 <= opts.outlier_share < 1:
        raise UserError("--tokens and --repeats must be >= 1 and --outlier-share in [0, 1)")
    device = common.torch_device
    if common.dtype == "auto":
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    else:
        dtype = common.torch_dtype
    in_f, out_f = opts.shape
    layer = QuantizedLinear.random(
        cfg, in_f, out_f, outlier_share=opts.outlier_share, seed=common.seed, device=device, dtype=dtype
    )
    gen = torch.Generator().manual_seed(common.seed)
    weight = (torch.randn(out_f, in_f, generator=gen) * 0.02).to(device=device, dtype=dtype)
    x = torch.randn(opts.tokens, in_f, generator=gen).to(device=device, dtype=dtype)

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(opts.repeats):
            if device.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    with torch.no_grad():
        ms_q = timed(lambda: layer(x))
        ms_d = timed(lambda: F.linear(x, weight))
    path = select_path(x, layer)
    dense_bytes = weight.numel() * weight.element_size()
    print(
        f"SpQR {_describe(cfg)}, {in_f}x{out_f}, {opts.tokens} token(s), {device}, {dtype}: "
        f"SpQR ({path}) {ms_q:.3f} ms, dense F.linear {ms_d:.3f} ms, speed-up {ms_d / ms_q:.2f}x "
        f"(median of {opts.repeats}); memory {layer.nbytes / 2**20:.2f} MiB vs {dense_bytes / 2**20:.2f} MiB"
    )
    record = {"shape": [in_f, out_f], "tokens": opts.tokens, "device": str(device), "dtype": str(dtype)}
    record |= {"path": path, "spqr_ms": ms_q, "dense_ms": ms_d, "speedup": ms_d / ms_q}
    record |= {"spqr_bytes": layer.nbytes, "dense_bytes": dense_bytes, "config": _config_record(cfg)}
    print(json.dumps(record))
    return 0


def info(common: CommonOptions) -> int:
    """Print the package version and every preset with its bits per parameter (no outliers)."""
    print(f"spqr {__version__} (engine, QuantizedLinear storage, checkpoints, Triton kernels)")
    print("presets (bits per parameter before outliers; each outlier adds 32 bits):")
    for name in PRESETS:
        cfg = SpQRConfig.from_preset(name)
        print(f"  {name:<6} {_describe(cfg)}: {cfg.bits_per_parameter():.3f} bits")
    return 0


def demo(common: CommonOptions) -> int:
    """Quantize the zoo tiny model with the near-lossless 4-bit preset; print perplexity, bits, outliers."""
    import copy

    logging.getLogger("papercore").setLevel(logging.WARNING)

    from papercore.llm import zoo
    from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
    from papercore.llm.metrics import perplexity
    from spqr.quantize import quantize_

    model, tok = zoo.load("tiny")
    calib = get_calibration_data("stdlib", tok, 64, 128, seed=common.seed)
    test = eval_windows(get_eval_stream("stdlib", tok), 128, max_windows=64)
    before = perplexity(model, test, batch_size=8, progress=False)
    print("spqr demo: zoo tiny, 64 x 128 calibration tokens, perplexity on 64 test windows of 128")
    print(f"  original: perplexity {before:.2f}")
    for preset in ("w4", "w3", "gptq3", "rtn3"):
        q = copy.deepcopy(model)
        report = quantize_(q, SpQRConfig.from_preset(preset), calib, store=False, progress=False)
        ppl = perplexity(q, test, batch_size=8, progress=False)
        print(
            f"  {preset:<6} perplexity {ppl:.2f}, {report.bits_per_parameter:.3f} bits per parameter, "
            f"outliers {100 * report.outlier_share:.2f}%"
        )
    return 0


app = CLI(
    "spqr",
    "SpQR: sparse-quantized representation of LLM weights (quantize, eval, bench, info, demo).",
    [
        Command(
            "quantize",
            quantize,
            "quantize a model (default: the zoo tiny model with the w4 preset); OUT becomes the model",
            config=SpQRConfig,
            options=QuantizeOptions,
            preset=PRESET,
        ),
        Command(
            "eval", evaluate, "perplexity and bits of a model saved by `spqr quantize`", options=EvalOptions
        ),
        Command(
            "bench",
            bench,
            "time the SpQR layer against dense F.linear on this device",
            config=SpQRConfig,
            options=BenchOptions,
            preset=dataclasses.replace(PRESET, default="w3"),
        ),
        Command("info", info, "print the version and the presets"),
        Command("demo", demo, "quantize the built-in tiny model with each preset; print perplexity and bits"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return app.main(argv or ["quantize"])  # no arguments: the embedded default run


if __name__ == "__main__":
    sys.exit(main())
