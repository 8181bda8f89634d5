"""depth-sr options: the network (:class:`MSGConfig`), the synthetic data (:class:`SceneConfig`),
the training budget and loss (:class:`DSRTrainConfig`) and the per-image DIP-V optimisation
(:class:`DIPConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig

SCALES = (2, 4, 8, 16)
LOSSES = ("l2", "msev", "mix")


@dataclass
class MSGConfig(Config):
    """MSG-Net for one upsampling factor (Hui et al. 2016's widths by default)."""

    scale: int = field(default=4, metadata={"help": "upsampling factor: 2, 4, 8 or 16"})
    width: int = field(
        default=32, metadata={"help": "channels of the Y features and of the fused depth features"}
    )
    y_channels: int = field(default=49, metadata={"help": "channels of the first (7x7) Y convolution"})
    depth_channels: int = field(
        default=64, metadata={"help": "channels of the first (5x5) depth convolution"}
    )

    @property
    def stages(self) -> int:
        return int(math.log2(self.scale))

    def validate(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}")
        if min(self.width, self.y_channels, self.depth_channels) < 1:
            raise ValueError("width, y_channels and depth_channels must be >= 1")


@dataclass
class SceneConfig(Config):
    """Synthetic training scenes (see :mod:`depth_sr.scenes`)."""

    size: int = field(default=128, metadata={"help": "HR image size in pixels (square)"})
    min_objects: int = field(default=2, metadata={"help": "fewest solids per scene"})
    max_objects: int = field(default=6, metadata={"help": "most solids per scene"})
    fov: float = field(default=60.0, metadata={"help": "horizontal field of view in degrees"})
    texture: bool = field(default=True, metadata={"help": "unaligned albedo texture in the RGB guidance"})
    noise: float = field(default=0.0, metadata={"help": "LR noise std, as a fraction of the depth range"})

    def validate(self):
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError("need 0 <= min_objects <= max_objects")
        if not 1 < self.fov < 170:
            raise ValueError(f"fov must be in (1, 170) degrees, got {self.fov}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")


@dataclass
class DSRTrainConfig(TrainConfig):
    """How MSG-Net is trained: the loss (L2, MSE_v or L2 + lambda MSE_v), Adam, crops, the budget."""

    steps: int = field(default=1500, metadata={"help": "optimisation steps", "resume": "free"})
    batch_size: int = field(default=8, metadata={"help": "crops per step"})
    checkpoint_every: int = field(
        default=250, metadata={"help": "steps between checkpoints", "resume": "free"}
    )
    eval_every: int = field(
        default=250, metadata={"help": "steps between validations (0: never)", "resume": "free"}
    )
    log_every: int = field(default=25, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})
    loss: Literal["l2", "msev", "mix"] = field(
        default="mix", metadata={"help": "l2 (normalised depth), msev (visual loss) or mix (l2 + lam * msev)"}
    )
    lam: float = field(default=1.0, metadata={"help": "weight of MSE_v in the mix loss"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    crop: int = field(default=64, metadata={"help": "HR crop size (a multiple of the scale)"})

    def validate(self):
        super().validate()
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not (self.lam >= 0 and math.isfinite(self.lam)) or not self.lr > 0:
            raise ValueError("lam must be a finite number >= 0 and lr > 0")
        if self.crop < 16:
            raise ValueError(f"crop must be >= 16, got {self.crop}")


@dataclass
class DIPConfig(Config):
    """DIP-V: a Deep Image Prior fitted to one LR depth map with the visual loss."""

    steps: int = field(default=600, metadata={"help": "optimisation steps per image"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    width: int = field(default=32, metadata={"help": "channels of the prior network"})
    lam: float = field(default=1.0, metadata={"help": "weight of MSE_v against the depth data term"})
    noise_channels: int = field(default=8, metadata={"help": "channels of the fixed input noise"})
    guide: bool = field(default=True, metadata={"help": "feed the RGB guidance to the prior network too"})

    def validate(self):
        if self.steps < 1 or self.width < 1 or self.noise_channels < 1:
            raise ValueError("steps, width and noise_channels must be >= 1")
        if not self.lr > 0 or not self.lam >= 0:
            raise ValueError("lr must be > 0 and lam >= 0")
