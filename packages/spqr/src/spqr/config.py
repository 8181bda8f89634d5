"""SpQR configuration: the quantization grid (bits, groups, bilevel statistics), the outlier
threshold and the GPTQ options, as a versioned :class:`papercore.config.Config`, plus the exact
size accounting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config

FP16_STATS = 16  # a statistic with this many bits is kept in fp16 (no second level)

PermutationOrder = Literal["identity", "act_order", "spearman"]
Method = Literal["spqr", "gptq", "rtn"]

# name -> overrides of the SpQRConfig defaults.
PRESETS: dict[str, dict] = {
    # README recipe of the authors: near-lossless at ~4.6 bits (w4) and the ~3.6-bit script (w3).
    "w4": dict(
        wbits=4, groupsize=16, qq_scale_bits=3, qq_zero_bits=3, qq_groupsize=16, outlier_threshold=0.2
    ),
    "w3": dict(
        wbits=3, groupsize=16, qq_scale_bits=3, qq_zero_bits=3, qq_groupsize=16, outlier_threshold=0.2
    ),
    # The usual GPTQ baseline: groups of 128, fp16 statistics, act-order, GPTQ's own damping 1%.
    "gptq4": dict(method="gptq", wbits=4, groupsize=128, percdamp=0.01),
    "gptq3": dict(method="gptq", wbits=3, groupsize=128, percdamp=0.01),
    # Round-to-nearest with the same grid as the GPTQ presets.
    "rtn4": dict(method="rtn", wbits=4, groupsize=128),
    "rtn3": dict(method="rtn", wbits=3, groupsize=128),
}


def preset_values(name: str) -> dict:
    """The field values of preset ``name`` (see :data:`PRESETS`); ValueError naming the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])


@dataclass
class SpQRConfig(Config):
    """Options of SpQR quantization of one linear layer (names follow the authors' command line).

    The defaults are the preset ``"w3"``. ``method="gptq"`` and ``method="rtn"`` are shorthands:
    they set ``outlier_threshold=inf`` and 16-bit statistics (and ``rtn`` the identity order),
    whatever those fields were given as. Version 1 is the format every spqr release wrote, so
    configs saved in checkpoints before the move to :class:`papercore.config.Config` load as they are.
    """

    VERSION = 1

    wbits: int = field(default=3, metadata={"help": "bits per weight code (2..8)"})
    groupsize: int = field(
        default=16, metadata={"help": "beta1: consecutive (permuted) input columns sharing a scale/zero"}
    )
    qq_scale_bits: int = field(
        default=3, metadata={"help": "bits of the second-level codes of the scales (1..8; 16: keep fp16)"}
    )
    qq_zero_bits: int = field(
        default=3, metadata={"help": "bits of the second-level codes of the zeros (1..8; 16: keep fp16)"}
    )
    qq_groupsize: int = field(
        default=16, metadata={"help": "beta2: consecutive output rows sharing a second-level scale/zero"}
    )
    outlier_threshold: float = field(
        default=0.2, metadata={"help": "tau, relative to the layer's error scale; inf: no outliers"}
    )
    permutation_order: PermutationOrder = field(
        default="act_order", metadata={"help": "input column order: identity, act_order, spearman"}
    )
    percdamp: float = field(
        default=1.0, metadata={"help": "damping added to diag(H), as a fraction of mean(diag H)"}
    )
    blocksize: int = field(
        default=128,
        metadata={"help": "GPTQ lazy-batch columns (speed only; rounded up to a multiple of groupsize)"},
    )
    simplified_outliers: bool = field(
        default=False,
        metadata={"help": "skip the leave-one-out outlier pre-detection before fitting statistics"},
    )
    method: Method = field(
        default="spqr", metadata={"help": "spqr; gptq (no outliers, fp16 stats); rtn (round to nearest)"}
    )
    round_zero: bool = field(default=False, metadata={"help": "round first-level zero points to integers"})
    sym: bool = field(default=False, metadata={"help": "symmetric first-level grid (zero fixed at (2^b)/2)"})

    def validate(self):
        if not 2 <= self.wbits <= 8:
            raise ValueError(f"wbits must be an integer in 2..8, got {self.wbits!r}")
        for name in ("qq_scale_bits", "qq_zero_bits"):
            bits = getattr(self, name)
            if not (1 <= bits <= 8 or bits == FP16_STATS):
                raise ValueError(f"{name} must be in 1..8, or 16 to keep the statistic in fp16; got {bits!r}")
        for name in ("groupsize", "qq_groupsize", "blocksize"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if math.isnan(self.outlier_threshold) or self.outlier_threshold < 0:
            raise ValueError(
                f"outlier_threshold must be >= 0 (inf: no outliers), got {self.outlier_threshold}"
            )
        if not (math.isfinite(self.percdamp) and self.percdamp >= 0):
            raise ValueError(f"percdamp must be a finite number >= 0, got {self.percdamp}")
        # The shorthands: gptq and rtn have no outliers and fp16 statistics, rtn no activations to
        # sort columns by. Normalised here so that equal settings compare (and save) equal.
        if self.method in ("gptq", "rtn"):
            self.outlier_threshold = math.inf
            self.qq_scale_bits = self.qq_zero_bits = FP16_STATS
        if self.method == "rtn":
            self.permutation_order = "identity"

    @classmethod
    def from_preset(cls, name: str, **overrides) -> SpQRConfig:
        """The preset ``name`` (see :data:`PRESETS`) with some fields overridden."""
        return cls(**{**preset_values(name), **overrides})

    @property
    def has_outliers(self) -> bool:
        return self.method == "spqr" and math.isfinite(self.outlier_threshold)

    def bits_per_parameter(self, outlier_share: float = 0.0) -> float:
        """Average storage per weight for this grid at the given outlier share; see :func:`bits_per_parameter`."""
        return bits_per_parameter(
            self.wbits,
            self.groupsize,
            self.qq_scale_bits,
            self.qq_zero_bits,
            self.qq_groupsize,
            outlier_share=outlier_share,
            sym=self.sym,
        )


def bits_per_parameter(
    wbits: int,
    groupsize: int,
    qq_scale_bits: int = 3,
    qq_zero_bits: int = 3,
    qq_groupsize: int = 16,
    outlier_share: float = 0.0,
    sym: bool = False,
) -> float:
    """Average bits per weight of an SpQR layer, as in the paper (and the authors' ``main.py``).

    Each weight has a :math:`b_w`-bit code. Each group of :math:`\\beta_1` weights of a row has a
    scale and a zero point; a statistic quantized to :math:`b` bits adds, per
    :math:`\\beta_1 \\times \\beta_2` tile, its own fp16 scale and zero (32 bits), while a statistic
    kept in fp16 (:math:`b = 16`) costs 16 bits per group and has no second level. Outliers cost
    32 bits each (fp16 value + 16-bit column index):

    .. math::

        \\bar b = b_w + c(b_s) + c(b_z) + 32\\, r_o, \\qquad
        c(b) = \\begin{cases} \\dfrac{b}{\\beta_1} + \\dfrac{32}{\\beta_1 \\beta_2} & b < 16 \\\\[4pt]
        \\dfrac{16}{\\beta_1} & b = 16 \\end{cases}

    so with both statistics quantized :math:`\\bar b = b_w + \\frac{b_s + b_z}{\\beta_1} +
    \\frac{64}{\\beta_1 \\beta_2} + 32 r_o` (3-bit weights and statistics, 16x16: 3.625), and with
    fp16 statistics :math:`\\bar b = b_w + \\frac{32}{\\beta_1} + 32 r_o`. With ``sym`` the zero
    point is a constant and costs nothing. Not counted (as in the paper): the input permutation
    (one index per input column) and the sparse row offsets.
    """

    def stat(bits: int) -> float:
        if bits >= FP16_STATS:
            return FP16_STATS / groupsize
        return bits / groupsize + 2 * FP16_STATS / (groupsize * qq_groupsize)

    return wbits + stat(qq_scale_bits) + (0.0 if sym else stat(qq_zero_bits)) + 32 * outlier_share
