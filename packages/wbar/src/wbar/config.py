"""WIN options: the networks, the inner NOT solvers and the generator regression (:class:`WINConfig`),
and the budget in outer iterations (:class:`WINTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig


@dataclass
class WINConfig(Config):
    """Algorithm 1 (and 2) of WIN: per outer iteration, ``not_steps`` NOT rounds per marginal
    (``map_steps`` map updates and one potential update each), then ``generator_steps`` regression
    steps of the generator onto the weighted average of the maps."""

    network: Literal["mlp", "conv"] = field(
        default="mlp", metadata={"help": "mlp for vectors, conv for images"}
    )
    width: int | None = field(
        default=None, metadata={"help": "MLP width (None: max(100, 2D)); conv: base channels (None: 32)"}
    )
    depth: int = field(default=3, metadata={"help": "hidden layers of the MLPs"})
    z_dim: int | None = field(
        default=None,
        metadata={"help": "latent dimension of the generator (None: D for vectors, 64 for images)"},
    )
    not_steps: int = field(default=50, metadata={"help": "NOT rounds per marginal per outer iteration"})
    map_steps: int = field(default=10, metadata={"help": "map updates per potential update"})
    generator_steps: int = field(
        default=50, metadata={"help": "generator regression steps per outer iteration"}
    )
    lr_generator: float = field(default=1e-3, metadata={"help": "Adam learning rate of the generator"})
    lr_map: float = field(default=1e-3, metadata={"help": "Adam learning rate of the NOT maps"})
    lr_potential: float = field(default=1e-3, metadata={"help": "Adam learning rate of the NOT potentials"})
    init: Literal["identity", "gaussian", "none"] = field(
        default="identity",
        metadata={
            "help": "generator start (vectors): identity (G#N(0,I) = N(0,I), as in WIN), gaussian (the alpha-averaged mean and covariance of the marginals) or none"
        },
    )
    pretrain_steps: int = field(
        default=500, metadata={"help": "steps fitting the generator to its start (--init)"}
    )
    inverse_maps: bool = field(
        default=False, metadata={"help": "Algorithm 2: also learn maps from each marginal to the barycentre"}
    )
    inverse_steps: int = field(
        default=50, metadata={"help": "NOT rounds per marginal per outer iteration for the inverse maps"}
    )
    inverse_final_steps: int = field(
        default=1000,
        metadata={
            "help": "extra NOT rounds per marginal for the inverse maps after the last outer iteration (the generator no longer moves)"
        },
    )

    def validate(self):
        if self.inverse_final_steps < 0:
            raise ValueError(f"inverse_final_steps must be >= 0, got {self.inverse_final_steps}")
        for name in ("depth", "not_steps", "map_steps", "generator_steps", "inverse_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be >= 0, got {self.pretrain_steps}")
        for name in ("width", "z_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {getattr(self, name)}")
        for name in ("lr_generator", "lr_map", "lr_potential"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class WINTrainConfig(TrainConfig):
    """The budget: ``steps`` outer iterations, each checkpointed and evaluated."""

    steps: int = field(default=10, metadata={"help": "outer iterations", "resume": "free"})
    batch_size: int = field(default=1024, metadata={"help": "samples per update"})
    checkpoint_every: int = field(
        default=1, metadata={"help": "outer iterations between checkpoints", "resume": "free"}
    )
    eval_every: int = field(
        default=1, metadata={"help": "outer iterations between evaluations (0: never)", "resume": "free"}
    )
    log_every: int = field(
        default=1, metadata={"help": "outer iterations per metrics.jsonl record", "resume": "free"}
    )
    keep_best: bool = field(
        default=False,
        metadata={"help": "end with the best validation weights (the default is the final iterate)"},
    )
