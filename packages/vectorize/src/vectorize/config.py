"""Options of each stage: the primitive network (:class:`NetConfig`), cleaning (:class:`CleanConfig`),
refinement (:class:`RefineConfig`), merging (:class:`MergeConfig`), the whole pipeline
(:class:`PipelineConfig`) and the training budget (:class:`VectorizeTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig


@dataclass
class NetConfig(Config):
    """The primitive network: CoordConv input, ResNet trunk, transformer decoder over fixed queries."""

    primitive: Literal["lines", "curves"] = field(
        default="curves",
        metadata={"help": "lines (x1 y1 x2 y2 w conf) or quadratic Béziers (3 points, w, conf)"},
    )
    slots: int = field(default=10, metadata={"help": "n: fixed query encodings = primitives per 64x64 patch"})
    channels: int = field(default=64, metadata={"help": "ResNet trunk width"})
    blocks: int = field(default=3, metadata={"help": "residual blocks of the trunk"})
    d_model: int = field(default=128, metadata={"help": "transformer width"})
    layers: int = field(default=3, metadata={"help": "transformer decoder layers"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    ffn: int = field(default=256, metadata={"help": "feed-forward width"})
    loss: Literal["slots", "mapping"] = field(
        default="slots",
        metadata={
            "help": "slots: BCE(conf) + L1 + L2 on sorted slots; mapping: the closed-form integrated distance"
        },
    )
    conf_weight: float = field(
        default=0.5, metadata={"help": "weight of BCE(conf) against the parameter terms"}
    )
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (Noam warm-up, then 1/sqrt decay)"})
    warmup: int = field(default=300, metadata={"help": "warm-up steps of the Noam schedule"})

    def validate(self):
        if min(self.slots, self.channels, self.blocks, self.d_model, self.layers, self.heads, self.ffn) < 1:
            raise ValueError("slots, channels, blocks, d_model, layers, heads and ffn must be >= 1")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by heads {self.heads}")
        if not 0 <= self.conf_weight <= 1 or self.lr <= 0 or self.warmup < 1:
            raise ValueError("conf_weight must be in [0, 1], lr > 0, warmup >= 1")


@dataclass
class CleanConfig(Config):
    """The cleaning U-Net: extraction (ink mask) and restoration (clean ink) heads."""

    clean_channels: int = field(
        default=16, metadata={"help": "U-Net width of the first level (doubles per level)"}
    )
    clean_levels: int = field(default=3, metadata={"help": "U-Net down-sampling levels"})
    clean_lr: float = field(default=2e-3, metadata={"help": "Adam learning rate of the U-Net"})

    def validate(self):
        if self.clean_channels < 1 or self.clean_levels < 1 or self.clean_lr <= 0:
            raise ValueError("clean_channels and clean_levels must be >= 1 and clean_lr > 0")


@dataclass
class RefineConfig(Config):
    """Energy refinement of each patch's primitives."""

    iterations: int = field(
        default=120, metadata={"help": "refinement iterations (0: keep the network output)"}
    )
    lr: float = field(default=0.05, metadata={"help": "Adam step (px)"})
    own_weight: float = field(default=4.0, metadata={"help": "weight of the pixels a stroke covers itself"})
    collinear_weight: float = field(
        default=1.0, metadata={"help": "lambda of the collinearity term (0: off)"}
    )
    reinit_every: int = field(
        default=20, metadata={"help": "re-initialise collapsed primitives every k iterations (0: never)"}
    )
    merge_every: int = field(
        default=60, metadata={"help": "merge overlapping collinear lines every k iterations (0: never)"}
    )
    merge_angle: float = field(
        default=15.0, metadata={"help": "max angle (deg) of lines merged during refinement"}
    )
    collapse_width: float = field(
        default=0.125, metadata={"help": "a stroke thinner than this has collapsed (px)"}
    )
    slots: int = field(
        default=10, metadata={"help": "line slots per patch (free ones take re-initialised lines)"}
    )
    curve_pieces: int = field(default=6, metadata={"help": "rectangles per Bézier in the energy"})
    min_width: float = field(default=0.3, metadata={"help": "drop strokes thinner than this (px)"})
    min_length: float = field(default=1.7, metadata={"help": "drop lines shorter than this (px)"})
    batch: int = field(default=32, metadata={"help": "patches refined together"})

    def validate(self):
        if self.iterations < 0 or self.lr <= 0 or self.own_weight <= 0 or self.collinear_weight < 0:
            raise ValueError("iterations must be >= 0, lr and own_weight > 0, collinear_weight >= 0")
        if self.slots < 1 or self.curve_pieces < 1 or self.batch < 1:
            raise ValueError("slots, curve_pieces and batch must be >= 1")


@dataclass
class MergeConfig(Config):
    """Merging across patches."""

    max_angle: float = field(default=15.0, metadata={"help": "max angle (deg) between lines merged"})
    max_distance: float = field(default=3.0, metadata={"help": "max gap / offset (px) between lines merged"})
    snap: float = field(default=1.5, metadata={"help": "snap end points closer than this (px; 0: off)"})
    prune: bool = field(
        default=True, metadata={"help": "greedily remove primitives whose removal keeps or raises IoU"}
    )

    def validate(self):
        if not 0 <= self.max_angle < 90 or self.max_distance < 0 or self.snap < 0:
            raise ValueError("max_angle must be in [0, 90), max_distance and snap >= 0")


@dataclass
class PipelineConfig(Config):
    """The whole pipeline: what to output and which stages to run."""

    primitives: Literal["lines", "curves", "both"] = field(
        default="both",
        metadata={"help": "output lines, quadratic Béziers, or both (straight curves become lines)"},
    )
    clean: bool = field(default=True, metadata={"help": "run the cleaning U-Net first"})
    confidence: float = field(default=0.5, metadata={"help": "keep network primitives above this confidence"})
    tile: int = field(default=1024, metadata={"help": "process huge images in tiles of this size (px)"})
    threshold: float = field(default=0.5, metadata={"help": "ink threshold of the input (after cleaning)"})

    def validate(self):
        if not 0 < self.confidence < 1 or not 0 < self.threshold < 1:
            raise ValueError("confidence and threshold must be in (0, 1)")
        if self.tile < 64 or self.tile % 64:
            raise ValueError(f"tile must be a multiple of 64, got {self.tile}")


@dataclass
class VectorizeTrainConfig(TrainConfig):
    """The training budget (on-the-fly synthetic 64x64 patches)."""

    steps: int = field(default=3000, metadata={"help": "optimisation steps", "resume": "free"})
    batch_size: int = field(default=32, metadata={"help": "patches per step"})
    checkpoint_every: int = field(
        default=500, metadata={"help": "steps between checkpoints", "resume": "free"}
    )
    eval_every: int = field(
        default=500, metadata={"help": "steps between validations (0: none)", "resume": "free"}
    )
    log_every: int = field(default=50, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})
