"""W2GN options: the potentials, the objective and the optimiser (:class:`W2GNConfig`), and the
training budget (:class:`W2GNTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig

Solver = Literal["w2gn", "mm"]
Widths = Literal["w2gn", "benchmark"]


@dataclass
class W2GNConfig(Config):
    """How the two potentials are built and trained.

    ``solver="w2gn"`` is the paper's non-minimax objective: ψ and ψ̄ minimise
    ``E ψ(x) − E ψ(∇ψ̄(y)) + λ·cycle`` together, ψ̄ learning only through the cycle terms.
    ``solver="mm"`` is Makkuva et al.'s max-min baseline: ψ̄ is fitted by ``mm_inner_steps`` inner
    steps of ``E[ψ(∇ψ̄(y)) − ⟨∇ψ̄(y), y⟩]`` per step of ψ, with no cycle term.
    """

    solver: Solver = field(
        default="w2gn", metadata={"help": "w2gn (non-minimax, cycle-regularised) or mm (Makkuva et al.)"}
    )
    widths: Widths = field(
        default="benchmark",
        metadata={
            "help": "hidden widths: benchmark [max(2D,64), max(2D,64), max(D,32)] or w2gn [max(128,D), max(128,D), max(64,D)]"
        },
    )
    hidden: tuple[int, ...] = field(
        default=(), metadata={"help": "explicit hidden widths (overrides --widths)"}
    )
    rank: int = field(default=1, metadata={"help": "rank of the convex quadratic skip layers"})
    activation: Literal["celu", "softplus"] = field(default="celu", metadata={"help": "convex activation"})
    strong_convexity: float = field(
        default=1e-4, metadata={"help": "s of the s/2 |x|^2 term of each potential"}
    )
    init_std: float = field(default=0.1, metadata={"help": "std of the initial weights"})
    cycle_weight: float | None = field(
        default=None,
        metadata={"help": "lambda of the cycle terms (per-coordinate mean squared error); None: D"},
    )
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate of both potentials"})
    betas: tuple[float, float] = field(
        default=(0.9, 0.999), metadata={"help": "Adam betas of the forward potential"}
    )
    conjugate_betas: tuple[float, float] = field(
        default=(0.9, 0.999),
        metadata={"help": "Adam betas of the conjugate potential (W2GN's Gaussians: 0.4 0.4)"},
    )
    mm_inner_steps: int = field(default=15, metadata={"help": "conjugate steps per step (solver mm)"})
    mm_convexify: bool = field(
        default=False,
        metadata={"help": "project the conjugate to convexity too (solver mm; the benchmark's MMv2)"},
    )
    pretrain_steps: int = field(default=2000, metadata={"help": "identity pretraining steps (0: none)"})
    pretrain_scale: float = field(default=3.0, metadata={"help": "pretrain on scale * N(0, I)"})
    reversed: bool = field(
        default=False, metadata={"help": "swap the roles: fit the inverse map's potential by the objective"}
    )
    gradient: Literal["closed_form", "autograd"] = field(
        default="closed_form",
        metadata={
            "help": "how grad psi is computed: closed_form (one backward for the parameter gradients) or autograd (double backward)"
        },
    )
    compile: bool = field(
        default=False, metadata={"help": "torch.compile the step's loss (fewer kernel launches on a GPU)"}
    )

    def validate(self):
        if self.rank < 1 or self.mm_inner_steps < 1 or self.pretrain_steps < 0:
            raise ValueError("rank and mm_inner_steps must be >= 1, pretrain_steps >= 0")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {list(self.hidden)}")
        if self.lr <= 0 or self.init_std <= 0 or self.strong_convexity < 0:
            raise ValueError("lr and init_std must be > 0 and strong_convexity >= 0")
        if self.cycle_weight is not None and self.cycle_weight < 0:
            raise ValueError(f"cycle_weight must be >= 0, got {self.cycle_weight}")
        for name in ("betas", "conjugate_betas"):
            if not all(0 <= b < 1 for b in getattr(self, name)):
                raise ValueError(f"{name} must be two numbers in [0, 1), got {list(getattr(self, name))}")

    def hidden_for(self, dim: int) -> tuple[int, ...]:
        """The hidden widths for dimension ``dim``."""
        if self.hidden:
            return tuple(self.hidden)
        if self.widths == "w2gn":
            return (max(128, dim), max(128, dim), max(64, dim))
        return (max(2 * dim, 64), max(2 * dim, 64), max(dim, 32))

    def lambda_for(self, dim: int) -> float:
        return float(dim) if self.cycle_weight is None else self.cycle_weight


@dataclass
class W2GNTrainConfig(TrainConfig):
    """The training budget of a fit (``papercore.train.TrainConfig`` with W2GN's defaults)."""

    steps: int = field(
        default=5000,
        metadata={
            "help": "optimisation steps (a fixed budget: the final iterate is the result)",
            "resume": "free",
        },
    )
    batch_size: int = field(default=1024, metadata={"help": "samples of P and of Q per step"})
    checkpoint_every: int = field(
        default=1000, metadata={"help": "steps between checkpoints (0: only at the end)", "resume": "free"}
    )
    log_every: int = field(default=50, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})
