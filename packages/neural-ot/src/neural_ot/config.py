"""NOT/GNOT options: the networks, the noise, the max-min schedule (:class:`NOTConfig`), and the budget
(:class:`NOTTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig


@dataclass
class NOTConfig(Config):
    """The max-min solver: per step, ``map_steps`` updates of the stochastic map T(x, z) on the cost
    functional minus the potential, then one update of the potential f."""

    map_net: Literal["mlp", "resnet", "unet"] = field(
        default="mlp",
        metadata={"help": "map network: mlp or resnet (vectors), unet (images, needs an image shape)"},
    )
    potential_net: Literal["mlp", "resnet"] = field(
        default="mlp",
        metadata={"help": "potential network: mlp, or resnet (a residual MLP; a conv ResNet for images)"},
    )
    width: int = field(
        default=256,
        metadata={"help": "hidden width (MLP/ResNet); base channels of the UNet / conv ResNet: width // 8"},
    )
    depth: int = field(default=3, metadata={"help": "hidden layers (MLP) or residual blocks (ResNet)"})
    z_dim: int = field(
        default=0, metadata={"help": "noise dimensions fed to the map with x (0: a deterministic map T(x))"}
    )
    z_size: int = field(default=1, metadata={"help": "noise samples Z per source point in each map update"})
    z_std: float = field(default=1.0, metadata={"help": "std of the noise z ~ N(0, z_std^2 I)"})
    gamma_ramp: int = field(
        default=0,
        metadata={
            "help": "weak cost: ramp gamma linearly from 0 to its value over this many steps (0: constant)"
        },
    )
    map_steps: int = field(default=10, metadata={"help": "map updates per potential update"})
    lr_map: float = field(default=1e-4, metadata={"help": "Adam learning rate of the map"})
    lr_potential: float = field(default=1e-4, metadata={"help": "Adam learning rate of the potential"})
    weight_decay: float = field(default=1e-10, metadata={"help": "Adam weight decay of both networks"})
    identity_init: bool = field(
        default=True,
        metadata={"help": "map = x + net(x, z) (residual), so training starts near the identity"},
    )

    def validate(self):
        for name in ("width", "depth", "z_size", "map_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("z_dim", "gamma_ramp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_map", "lr_potential", "z_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.z_size > 1 and self.z_dim == 0:
            raise ValueError(
                "z_size > 1 needs noise: set z_dim >= 1 (a deterministic map gives Z equal copies)"
            )


@dataclass
class NOTTrainConfig(TrainConfig):
    """The budget: ``steps`` max-min steps (each = ``map_steps`` map updates + one potential update)."""

    steps: int = field(default=500, metadata={"help": "max-min steps", "resume": "free"})
    batch_size: int = field(default=64, metadata={"help": "source samples per map update"})
    checkpoint_every: int = field(
        default=100, metadata={"help": "steps between checkpoints (0: only at the end)", "resume": "free"}
    )
    log_every: int = field(default=10, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})
