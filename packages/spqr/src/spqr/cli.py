"""``spqr`` command line: ``quantize`` (default: the zoo tiny model with the near-lossless ``w4``
preset), ``eval`` (perplexity and bits of a saved model), ``info`` and ``demo``."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config
from papercore.llm.metrics import corpus_perplexity
from papercore.llm.zoo import load_model
from spqr import __version__

log = logging.getLogger(__name__)


@dataclass
class QuantizeOptions:
    model: str = field(default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small"})
    out: Path | None = field(default=None, metadata={"help": "output folder (default: a new temporary one)"})
    preset: str = field(
        default="w4", metadata={"help": "w4, w3, gptq4, gptq3, rtn4, rtn3 (the fields below override it)"}
    )
    method: Literal["spqr", "gptq", "rtn"] | None = None
    wbits: int | None = None
    groupsize: int | None = field(default=None, metadata={"help": "beta1"})
    qq_scale_bits: int | None = None
    qq_zero_bits: int | None = None
    qq_groupsize: int | None = field(default=None, metadata={"help": "beta2"})
    outlier_threshold: float | None = field(default=None, metadata={"help": "tau (inf: no outliers)"})
    permutation_order: Literal["identity", "act_order", "spearman"] | None = None
    percdamp: float | None = None
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    nsamples: int = field(default=64, metadata={"help": "calibration sequences"})
    seqlen: int = field(default=128, metadata={"help": "tokens per calibration sequence"})
    resume: bool = field(default=False, metadata={"help": "continue from the blocks saved in OUT/blocks"})
    eval_dataset: str = "stdlib"
    eval_windows: int | None = field(default=64, metadata={"help": "evaluation windows (None: all)"})


def _spqr_config(opts: QuantizeOptions):
    from spqr.config import SpQRConfig

    names = ("method", "wbits", "groupsize", "qq_scale_bits", "qq_zero_bits", "qq_groupsize")
    names += ("outlier_threshold", "permutation_order", "percdamp")
    overrides = {n: getattr(opts, n) for n in names if getattr(opts, n) is not None}
    return SpQRConfig.from_preset(opts.preset, **overrides)


def quantize(opts: QuantizeOptions, common: CommonOptions) -> int:
    """Quantize a model block by block; save OUT/model, OUT/summary.json and OUT/resolved_config.json."""
    from papercore.io import write_json
    from papercore.llm.data import get_calibration_data
    from spqr.checkpoint import save_quantized
    from spqr.quantize import check_model, model_bits, quantize_

    device = common.torch_device
    config = _spqr_config(opts)  # bad presets / values: ValueError, exit 2
    if opts.nsamples < 1 or opts.seqlen < 2:
        raise UserError(f"--nsamples must be >= 1 and --seqlen >= 2, got {opts.nsamples} and {opts.seqlen}")
    out = opts.out
    if out is not None and out.exists() and any(out.iterdir()) and not opts.resume:
        raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume a run)")
    model, tok, src = load_model(opts.model, device=device)
    check_model(model, config)  # group sizes, non-finite weights: before any work
    out = out or Path(tempfile.mkdtemp(prefix="spqr-"))
    calib = get_calibration_data(opts.dataset, tok, opts.nsamples, opts.seqlen, seed=common.seed)
    print(
        f"quantizing {src} with SpQR {opts.preset} ({config.method}) on {opts.nsamples}x{opts.seqlen} tokens"
    )
    ppl_before = corpus_perplexity(
        model, tok, opts.eval_dataset, opts.seqlen, opts.eval_windows, device=device
    )
    t0 = time.perf_counter()
    report = quantize_(model, config, calib, checkpoint_dir=out / "blocks", resume=opts.resume, device=device)
    seconds = time.perf_counter() - t0
    save_quantized(model, out / "model", tokenizer=tok, config=config)
    ppl_after = corpus_perplexity(
        model, tok, opts.eval_dataset, opts.seqlen, opts.eval_windows, device=device
    )
    bits = model_bits(model)
    write_json(
        out / "summary.json",
        {
            "model": str(src),
            "preset": opts.preset,
            "config": {**config.to_dict(), "outlier_threshold": str(config.outlier_threshold)},
            "seconds": round(seconds, 1),
            "perplexity_before": ppl_before,
            "perplexity_after": ppl_after,
            "resumed_blocks": report.resumed_blocks,
            **bits,
            "eval": {"dataset": opts.eval_dataset, "seqlen": opts.seqlen, "windows": opts.eval_windows},
        },
    )
    write_resolved_config(out, opts, common)
    print(f"saved {out / 'model'} ({seconds:.1f} s)")
    print(f"perplexity {ppl_before:.2f} -> {ppl_after:.2f} ({opts.eval_dataset}, seqlen {opts.seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.3f} stored "
        f"({bits['formula_bits_per_parameter']:.3f} by the paper's formula), outliers "
        f"{100 * bits['outlier_share']:.2f}%"
    )
    return 0


@dataclass
class EvalOptions:
    model: Path = field(
        default=Path("."), metadata={"help": "a folder written by `spqr quantize` (or its model/)"}
    )
    dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    seqlen: int = 128
    windows: int | None = field(default=None, metadata={"help": "evaluation windows (None: the whole split)"})


def evaluate(opts: EvalOptions, common: CommonOptions) -> int:
    """Perplexity and bits of a saved SpQR model."""
    from papercore.llm.data import load_tokenizer
    from spqr.checkpoint import load_quantized
    from spqr.quantize import model_bits

    path = opts.model / "model" if (opts.model / "model" / "config.json").is_file() else opts.model
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


def info(common: CommonOptions) -> int:
    """Print the package version and every preset with its bits per parameter (no outliers)."""
    from spqr.config import PRESETS, SpQRConfig

    print(f"spqr {__version__} (engine, QuantizedLinear storage, checkpoints; torch reference forward)")
    print("presets (bits per parameter before outliers; each outlier adds 32 bits):")
    for name in PRESETS:
        cfg = SpQRConfig.from_preset(name)
        stats = (
            "fp16 stats"
            if cfg.qq_scale_bits == 16
            else f"{cfg.qq_scale_bits}-bit stats/{cfg.qq_groupsize} rows"
        )
        tau = "no outliers" if cfg.outlier_threshold == float("inf") else f"tau {cfg.outlier_threshold}"
        print(
            f"  {name:<6} {cfg.method:<4} {cfg.wbits}-bit, groups of {cfg.groupsize}, {stats}, {tau}, "
            f"{cfg.permutation_order}: {cfg.bits_per_parameter():.3f} bits"
        )
    return 0


def demo(common: CommonOptions) -> int:
    """Quantize the zoo tiny model with the near-lossless 4-bit preset; print perplexity, bits, outliers."""
    import copy
    import logging

    logging.getLogger("papercore").setLevel(logging.WARNING)

    from papercore.llm import zoo
    from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
    from papercore.llm.metrics import perplexity
    from spqr.config import SpQRConfig
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
    "SpQR: sparse-quantized representation of LLM weights (quantize, eval, info, demo).",
    [
        Command(
            "quantize",
            quantize,
            "quantize a model (default: the zoo tiny model with the w4 preset)",
            QuantizeOptions,
        ),
        Command("eval", evaluate, "perplexity and bits of a model saved by `spqr quantize`", EvalOptions),
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
