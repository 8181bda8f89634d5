"""AQUA-KV's configs (``papercore.config.Config``: versioned, type-checked, JSON round-trip) and the
exact storage accounting.

* :class:`AquaKVConfig` -- how the cache stores keys and values (grid, groups, layer 0, sink, buffer);
* :class:`CalibrationConfig` -- how the predictors are fitted (windows, held-out windows, ridge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config

FIRST_LAYER_GRIDS = {2: (2, 16), 3: (2, 64), 4: (2, 256)}  # bits -> (d, n); 16 keeps layer 0 in fp16
SCALE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


class UnsupportedLayoutError(NotImplementedError, ValueError):
    """The model's attention layout cannot use this cache (layer types, RoPE, KV head shapes).

    A ``ValueError`` too, so the CLI reports it as a user error (one line, exit code 2).
    """


def _pow2(x: int) -> bool:
    return isinstance(x, int) and x >= 1 and not (x & (x - 1))


@dataclass
class AquaKVConfig(Config):
    """How the cache stores keys and values (what the quantizer and the cache layout need).

    The defaults are the paper's: (2, 16) grid (2 bits per value), groups of the full channel width,
    layer 0 at 4 bits with a (2, 256) grid, fp16 scales, 4 sink tokens and chunks of 128 tokens.
    Saved configs of version 1 (the fields below) load unchanged.
    """

    VERSION = 1

    edenn_d: int = field(default=2, metadata={"help": "grid dimension d"})
    edenn_n: int = field(default=16, metadata={"help": "grid size n (log2(n)/d bits per value)"})
    group_size: int | None = field(
        default=None,
        metadata={"help": "Hadamard group (power of two dividing the KV channels; None: all of them)"},
    )
    first_layer_bits: int = field(
        default=4, metadata={"help": "layer 0 (no predictor): 2, 3, 4 bits or 16 (fp16)"}
    )
    scale_dtype: Literal["float16", "bfloat16", "float32"] = field(
        default="float16", metadata={"help": "dtype of the per-group scales"}
    )
    prefix_size: int = field(
        default=4, metadata={"help": "attention-sink tokens (first positions) kept in the model dtype"}
    )
    buffer_size: int = field(
        default=128,
        metadata={"help": "chunk length: tokens are quantized in aligned chunks of this many, the rest "
                  "(fewer than this) stay in the model dtype"},
    )  # fmt: skip

    def validate(self) -> None:
        if self.edenn_d < 1:
            raise ValueError(f"edenn_d must be an integer >= 1, got {self.edenn_d!r}")
        if not _pow2(self.edenn_n) or self.edenn_n < 2:
            raise ValueError(f"edenn_n must be a power of two >= 2, got {self.edenn_n!r}")
        if self.group_size is not None and not _pow2(self.group_size):
            raise ValueError(
                f"group_size must be a power of two (or None for all channels), got {self.group_size!r}"
            )
        if self.first_layer_bits not in (*FIRST_LAYER_GRIDS, 16):
            raise ValueError(f"first_layer_bits must be 2, 3, 4 or 16, got {self.first_layer_bits!r}")
        if self.scale_dtype not in SCALE_BYTES:
            raise ValueError(f"scale_dtype must be one of {', '.join(SCALE_BYTES)}, got {self.scale_dtype!r}")
        for name in ("prefix_size", "buffer_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")

    def resolved_group(self, channels: int) -> int:
        """The Hadamard group for ``channels`` KV channels, checked."""
        g = self.group_size or channels
        if not _pow2(g):
            raise ValueError(
                f"group_size {g} is not a power of two: the {channels} KV channels need an explicit "
                "--group-size that is a power of two dividing them"
            )
        if channels % g:
            raise ValueError(f"group_size {g} does not divide the {channels} KV channels")
        if g < 2:
            raise ValueError(f"group_size must be >= 2, got {g}")
        return g


# The paper's calibration set (256 windows of 8192 tokens, 32 held out) and the small one used for
# the zoo models (seconds on a CPU).
PAPER_CALIBRATION = {"nsamples": 256, "seqlen": 8192}
SMALL_CALIBRATION = {"nsamples": 32, "seqlen": 256}


@dataclass
class CalibrationConfig(Config):
    """How the predictors are fitted: calibration windows, held-out windows, ridge.

    ``nsamples``/``seqlen`` left at None take the paper's 256 x 8192 tokens, or 32 x 256 for the
    built-in zoo models (:meth:`resolved`); ``valid_nsamples`` None holds out one window in eight.
    """

    VERSION = 1

    nsamples: int | None = field(
        default=None, metadata={"help": "calibration windows (None: 256; zoo models: 32)"}
    )
    seqlen: int | None = field(
        default=None, metadata={"help": "tokens per window (None: 8192; zoo models: 256)"}
    )
    valid_nsamples: int | None = field(
        default=None,
        metadata={"help": "held-out windows for the per-layer report (None: one in eight)"},
    )
    percdamp: float = field(default=1e-3, metadata={"help": "ridge, as a fraction of mean diag(X^T X)"})

    def validate(self) -> None:
        if self.nsamples is not None and self.nsamples < 2:
            raise ValueError(f"nsamples must be >= 2, got {self.nsamples}")
        if self.seqlen is not None and self.seqlen < 2:
            raise ValueError(f"seqlen must be >= 2, got {self.seqlen}")
        if self.valid_nsamples is not None and self.valid_nsamples < 0:
            raise ValueError(f"valid_nsamples must be >= 0, got {self.valid_nsamples}")
        if (
            self.nsamples is not None
            and self.valid_nsamples is not None
            and self.valid_nsamples >= self.nsamples
        ):
            raise ValueError(
                f"valid_nsamples ({self.valid_nsamples}) must be smaller than nsamples ({self.nsamples})"
            )
        if not (math.isfinite(self.percdamp) and self.percdamp >= 0):
            raise ValueError(f"percdamp must be a finite number >= 0, got {self.percdamp}")

    def resolved(self, small: bool = False) -> CalibrationConfig:
        """A copy with the sizes filled in: the paper's, or the small set (``small``, zoo models)."""
        sizes = SMALL_CALIBRATION if small else PAPER_CALIBRATION
        n = self.nsamples if self.nsamples is not None else sizes["nsamples"]
        seqlen = self.seqlen if self.seqlen is not None else sizes["seqlen"]
        return self.replace(nsamples=n, seqlen=seqlen, valid_nsamples=self.holdout(n))

    def holdout(self, nsamples: int) -> int:
        """Held-out windows out of ``nsamples``: ``valid_nsamples``, or one in eight when None."""
        v = self.valid_nsamples if self.valid_nsamples is not None else nsamples // 8
        if not 0 <= v < nsamples:
            raise ValueError(
                f"valid_nsamples must be in [0, {nsamples - 1}] for {nsamples} calibration windows, got {v}"
            )
        return v


def row_bytes(channels: int, d: int, n: int, group: int, scale_bytes: int = 2) -> int:
    """Bytes of one quantized row of ``channels`` values: packed codes (32-bit words) plus scales."""
    from aquakv.quantizer import _split_bits
    from papercore.kernels.packing import packed_numel

    codes = -(-channels // d)  # the last piece is zero-padded when d does not divide the row
    words = sum(packed_numel(codes, b) for b in _split_bits(int(math.log2(n))))
    return 4 * words + (channels // group) * scale_bytes


def bytes_per_token(
    num_layers: int,
    channels: int,
    *,
    d: int = 2,
    n: int = 16,
    group: int | None = None,
    first_layer_bits: int = 4,
    scale_bytes: int = 2,
) -> int:
    """Quantized bytes per token over all layers, keys plus values (sink, buffer and predictors excluded).

    Llama-3.2-3B (28 layers, 1024 channels) at the defaults: :math:`2(512+2) + 27 \\cdot 2(256+2) = 14960`.
    """
    group = group or channels
    if first_layer_bits == 16:
        first = 2 * channels * 2
    else:
        fd, fn = FIRST_LAYER_GRIDS[first_layer_bits]
        first = 2 * row_bytes(channels, fd, fn, group, scale_bytes)
    return first + (num_layers - 1) * 2 * row_bytes(channels, d, n, group, scale_bytes)


def config_bytes_per_token(cfg: AquaKVConfig, num_layers: int, channels: int) -> int:
    return bytes_per_token(
        num_layers,
        channels,
        d=cfg.edenn_d,
        n=cfg.edenn_n,
        group=cfg.resolved_group(channels),
        first_layer_bits=cfg.first_layer_bits,
        scale_bytes=SCALE_BYTES[cfg.scale_dtype],
    )
