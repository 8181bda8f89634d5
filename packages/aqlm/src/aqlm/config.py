"""AQLM configuration: the code layout (M codebooks of 2^B vectors over groups of g weights), the
calibration and block fine-tuning options (:class:`AQLMConfig`), and the end-to-end fine-tuning
options (:class:`DistillConfig`), as versioned :class:`papercore.config.Config` dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from papercore.config import Config

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

CODEBOOK_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


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


def scheme_values(name: str) -> dict[str, int]:
    """The :class:`AQLMConfig` fields a scheme name sets (the CLI's ``--scheme`` preset)."""
    m, b, g = parse_scheme(name)
    return {"num_codebooks": m, "nbits_per_codebook": b, "in_group_size": g}


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class AQLMConfig(Config):
    """Options of AQLM quantization (field names follow the upstream command line)."""

    VERSION = 1

    num_codebooks: int = field(default=2, metadata=_help("codebooks per group (M)"))
    nbits_per_codebook: int = field(default=8, metadata=_help("bits per code, 2^B entries per codebook (B)"))
    in_group_size: int = field(default=8, metadata=_help("consecutive input weights per group (g)"))
    out_group_size: int = field(
        default=1, metadata=_help("output rows per group (1 is the only layout with fast kernels)")
    )
    # calibration of one linear layer (AQEngine)
    beam_size: int = field(default=1, metadata=_help("beam search hypotheses per output row"))
    relative_mse_tolerance: float = field(
        default=0.01, metadata=_help("stop a layer when a round improves its error by less than this")
    )
    max_epochs: int = field(default=100, metadata=_help("most Adam + beam-search rounds per layer"))
    steps_per_epoch: int = field(default=100, metadata=_help("Adam steps on codebooks and scales per round"))
    lr: float = field(default=1e-4, metadata=_help("Adam learning rate of the per-layer calibration"))
    init_max_iter: int = field(default=100, metadata=_help("k-means iterations of the initialisation"))
    init_max_points_per_centroid: int | None = field(
        default=None, metadata=_help("fit k-means on at most this many groups per centroid (None: all)")
    )
    # block fine-tuning (codes frozen; codebooks, scales, norms trained against the original block)
    finetune_max_epochs: int = field(default=0, metadata=_help("block fine-tuning epochs (0: off)"))
    finetune_lr: float = field(default=1e-5, metadata=_help("Adam learning rate of block fine-tuning"))
    finetune_batch_size: int = field(
        default=32, metadata=_help("calibration sequences per block fine-tuning step (over all processes)")
    )
    finetune_relative_tolerance: float = field(
        default=0.001, metadata=_help("an epoch counts as an improvement when it lowers the loss by this")
    )
    finetune_early_stop: int = field(
        default=3, metadata=_help("stop after this many epochs without improvement")
    )
    finetune_keep_best: bool = field(
        default=True, metadata=_help("restore the block state of the best held-out loss")
    )
    val_size: int = field(
        default=0, metadata=_help("calibration sequences held out for block fine-tuning's early stopping")
    )
    true_sequential: bool = field(
        default=False, metadata=_help("quantize q/k/v, then o, then up/gate, then down, re-measuring inputs")
    )
    skip: tuple[str, ...] = field(
        default=("lm_head", "embed_tokens", "gate"), metadata=_help("module names never quantized")
    )
    codebook_dtype: Literal["float16", "bfloat16", "float32"] = field(
        default="float16",
        metadata=_help("dtype codebooks and scales are stored in (float16: the upstream format)"),
    )

    def validate(self):
        if not 1 <= self.nbits_per_codebook <= 16:
            raise ValueError(f"nbits_per_codebook must be in 1..16, got {self.nbits_per_codebook}")
        for name in (
            "num_codebooks",
            "in_group_size",
            "out_group_size",
            "beam_size",
            "max_epochs",
            "steps_per_epoch",
            "init_max_iter",
            "finetune_batch_size",
            "finetune_early_stop",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("finetune_max_epochs", "val_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.init_max_points_per_centroid is not None and self.init_max_points_per_centroid < 1:
            raise ValueError(
                f"init_max_points_per_centroid must be >= 1 or None, got {self.init_max_points_per_centroid}"
            )
        if not 0 <= self.relative_mse_tolerance < 1:
            raise ValueError(f"relative_mse_tolerance must be in [0, 1), got {self.relative_mse_tolerance}")
        if not 0 <= self.finetune_relative_tolerance < 1:
            raise ValueError(
                f"finetune_relative_tolerance must be in [0, 1), got {self.finetune_relative_tolerance}"
            )
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_scheme(cls, scheme: str, **overrides) -> AQLMConfig:
        return cls(**{**scheme_values(scheme), **overrides})

    @property
    def scheme(self) -> str:
        return f"{self.num_codebooks}x{self.nbits_per_codebook}g{self.in_group_size}"

    @property
    def torch_codebook_dtype(self) -> torch.dtype:
        return CODEBOOK_DTYPES[self.codebook_dtype]


@dataclass
class DistillConfig(Config):
    """Options of end-to-end fine-tuning: distillation of the original model's logits (KL) into the
    quantized model, with optional discrete code updates (PV-tuning's V step)."""

    VERSION = 1

    epochs: int = field(default=1, metadata=_help("passes over the fine-tuning sequences"))
    lr: float = field(default=3e-4, metadata=_help("Adam learning rate of codebooks, scales and the rest"))
    batch_size: int = field(default=8, metadata=_help("sequences per optimizer step"))
    train_nonquantized: bool = field(
        default=True, metadata=_help("also train norms, embeddings and the head")
    )
    code_update_every: int = field(
        default=0, metadata=_help("discrete code update every K optimizer steps (0: codes frozen)")
    )
    max_code_change: float = field(
        default=0.01, metadata=_help("most code groups of a layer that one code update may change (fraction)")
    )
    code_lr: float = field(
        default=1e-2, metadata=_help("Adam learning rate of the straight-through dense weights")
    )
    code_betas: tuple[float, float] = field(
        default=(0.0, 0.95), metadata=_help("Adam betas of the straight-through dense weights")
    )
    code_beam_size: int = field(
        default=5, metadata=_help("beam search hypotheses per group when codes are re-encoded")
    )
    code_residual_decay: float = field(
        default=0.0,
        metadata=_help(
            "part of the dense weight's move the codes did not take that is dropped at each code "
            "update (0: the dense weights keep training, codes follow; 1: restart from the codes)"
        ),
    )

    def validate(self):
        for name in ("epochs", "batch_size", "code_beam_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.code_update_every < 0:
            raise ValueError(f"code_update_every must be >= 0, got {self.code_update_every}")
        if not 0 <= self.max_code_change <= 1:
            raise ValueError(f"max_code_change must be in [0, 1], got {self.max_code_change}")
        for name in ("lr", "code_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.code_residual_decay <= 1:
            raise ValueError(f"code_residual_decay must be in [0, 1], got {self.code_residual_decay}")
        if not all(0 <= b < 1 for b in self.code_betas):
            raise ValueError(f"code_betas must lie in [0, 1), got {self.code_betas}")


def bits_per_parameter(
    out_features: int,
    in_features: int,
    num_codebooks: int,
    nbits: int,
    in_group_size: int,
    out_group_size: int = 1,
    *,
    code_bits: int | None = None,
    codebook_bits: int = 16,
    scale_bits: int = 16,
) -> float:
    """Storage of one quantized linear in bits per weight: codes + codebooks + scales.

    :math:`\\frac{M b_{code}}{g_{in} g_{out}} + \\frac{b_{cb} M 2^B g_{in} g_{out}}{d_{out} d_{in}} + \\frac{b_s}{d_{in} g_{out}}`
    with :math:`b_{code} = B` (``code_bits=None``: the paper's packed count; the upstream format
    stores codes in int8/int16, ``code_bits=8``/``16``) and fp16 codebooks and scales by default
    (the bias, if any, is counted with the unquantized parameters).
    """
    group = in_group_size * out_group_size
    codes = num_codebooks * (nbits if code_bits is None else code_bits) / group
    codebooks = codebook_bits * num_codebooks * (2**nbits) * group / (out_features * in_features)
    scales = scale_bits / (in_features * out_group_size)
    return codes + codebooks + scales
