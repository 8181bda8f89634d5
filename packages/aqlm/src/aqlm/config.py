"""AQLM configuration: the code layout (M codebooks of 2^B vectors over groups of g weights) and
the calibration, fine-tuning and run options, as versioned dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# name -> (num_codebooks M, nbits_per_codebook B, in_group_size g)
SCHEMES: dict[str, tuple[int, int, int]] = {
    "1x16g8": (1, 16, 8),  # ~2 bits, best accuracy, large codebook
    "2x8g8": (2, 8, 8),  # ~2 bits, fast GPU kernel
    "1x8g8": (1, 8, 8),  # ~1 bit
    "1x16g16": (1, 16, 16),  # ~1 bit
    "4x8g8": (4, 8, 8),  # ~4 bits, fast CPU lookup-table kernel
    "8x8g8": (8, 8, 8),  # ~8 bits
    "3x8g8": (3, 8, 8),  # ~3 bits
}


def parse_scheme(name: str) -> tuple[int, int, int]:
    """``"MxBgG"`` -> (M, B, g); any M, B (1..16), g works, the presets are just names."""
    if name in SCHEMES:
        return SCHEMES[name]
    try:
        mb, g = name.lower().split("g")
        m, b = mb.split("x")
        return int(m), int(b), int(g)
    except ValueError:
        raise ValueError(
            f"unknown scheme {name!r}: use a preset ({', '.join(SCHEMES)}) or the form MxBgG, e.g. 3x8g8"
        ) from None


@dataclass
class AQLMConfig:
    """Options of AQLM quantization (field names follow the upstream command line)."""

    num_codebooks: int = 2
    nbits_per_codebook: int = 8
    in_group_size: int = 8
    out_group_size: int = 1
    # calibration of one linear layer (AQEngine)
    beam_size: int = 1
    relative_mse_tolerance: float = 0.01
    max_epochs: int = 100
    steps_per_epoch: int = 100
    lr: float = 1e-4
    init_max_iter: int = 100
    init_max_points_per_centroid: int | None = None
    # block fine-tuning (codes frozen; codebooks, scales, norms trained against the original block)
    finetune_max_epochs: int = 0
    finetune_lr: float = 1e-5
    finetune_batch_size: int = 32
    finetune_relative_tolerance: float = 0.001
    finetune_early_stop: int = 3
    finetune_keep_best: bool = True
    val_size: int = 0
    true_sequential: bool = False
    skip: tuple[str, ...] = ("lm_head", "embed_tokens", "gate")  # module names never quantized
    version: int = 1

    def __post_init__(self):
        if not 1 <= self.nbits_per_codebook <= 16:
            raise ValueError(f"nbits_per_codebook must be in 1..16, got {self.nbits_per_codebook}")
        for name in (
            "num_codebooks",
            "in_group_size",
            "out_group_size",
            "beam_size",
            "max_epochs",
            "steps_per_epoch",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.relative_mse_tolerance < 1:
            raise ValueError(f"relative_mse_tolerance must be in [0, 1), got {self.relative_mse_tolerance}")
        self.skip = tuple(self.skip)

    @classmethod
    def from_scheme(cls, scheme: str, **overrides) -> AQLMConfig:
        m, b, g = parse_scheme(scheme)
        return cls(num_codebooks=m, nbits_per_codebook=b, in_group_size=g, **overrides)

    @property
    def scheme(self) -> str:
        return f"{self.num_codebooks}x{self.nbits_per_codebook}g{self.in_group_size}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AQLMConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def bits_per_parameter(
    out_features: int,
    in_features: int,
    num_codebooks: int,
    nbits: int,
    in_group_size: int,
    out_group_size: int = 1,
) -> float:
    """Exact storage of one quantized linear in bits per weight: codes + fp16 codebooks + fp16 scales.

    :math:`\\frac{M B}{g_{in} g_{out}} + \\frac{16 M 2^B g_{in} g_{out}}{d_{out} d_{in}} + \\frac{16}{d_{in} g_{out}}`
    (the bias, if any, is counted with the unquantized parameters).
    """
    group = in_group_size * out_group_size
    codes = num_codebooks * nbits / group
    codebooks = 16 * num_codebooks * (2**nbits) * group / (out_features * in_features)
    scales = 16 / (in_features * out_group_size)
    return codes + codebooks + scales


@dataclass
class RunOptions:
    """How a quantization run executes (not part of the saved format)."""

    nsamples: int = 128
    seqlen: int = 512
    dataset: str = "stdlib"
    seed: int = 0
    offload_activations: bool = False
    devices: tuple[str, ...] = field(default_factory=tuple)
