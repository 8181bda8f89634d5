"""``spqr`` command line. For now only ``spqr info``: the version and the presets with their size."""

from __future__ import annotations

from papercore.cli import CLI, Command, CommonOptions
from spqr import __version__


def info(common: CommonOptions) -> int:
    """Print the package version and every preset with its bits per parameter (no outliers)."""
    from spqr.config import PRESETS, SpQRConfig

    print(f"spqr {__version__} (engine only: spqr.engine.quantize_weight)")
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

    from papercore import zoo
    from papercore.data import eval_windows, get_calibration_data, get_eval_stream
    from papercore.metrics import perplexity
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
        report = quantize_(q, SpQRConfig.from_preset(preset), calib, progress=False)
        ppl = perplexity(q, test, batch_size=8, progress=False)
        print(
            f"  {preset:<6} perplexity {ppl:.2f}, {report.bits_per_parameter:.3f} bits per parameter, "
            f"outliers {100 * report.outlier_share:.2f}%"
        )
    return 0


app = CLI(
    "spqr",
    "SpQR: sparse-quantized representation of LLM weights (engine only in this release).",
    [
        Command("info", info, "print the version and the presets"),
        Command("demo", demo, "quantize the built-in tiny model with each preset; print perplexity and bits"),
    ],
    version=__version__,
)
main = app.main
