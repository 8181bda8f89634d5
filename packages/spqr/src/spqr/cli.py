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


app = CLI(
    "spqr",
    "SpQR: sparse-quantized representation of LLM weights (engine only in this release).",
    [Command("info", info, "print the version and the presets")],
    version=__version__,
)
main = app.main
