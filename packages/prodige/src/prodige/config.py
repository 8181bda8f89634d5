"""PRODIGE options: how the graph is built, searched and regularised (:class:`ProdigeConfig`), and
the training budget (:class:`ProdigeTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig


@dataclass
class ProdigeConfig(Config):
    """The graph, its shortest-path search and the objective.

    Each edge ``e`` has a weight ``softplus(theta_w[e])`` and a keep-probability
    ``sigmoid(theta_p[e])``. The loss of a step is ``task + logp_weight * path_term +
    lambda(t) * prior`` with ``lambda(t) = sparsity * min(1, t / sparsity_ramp) * E_alive / E_0``.
    """

    knn: int = field(default=16, metadata={"help": "nearest-neighbour edges per vertex at init"})
    random_edges: int = field(default=8, metadata={"help": "random edges per vertex at init (small world)"})
    virtual_vertices: int = field(
        default=0,
        metadata={"help": "k-means centroids added as Steiner vertices (each linked to its knn points)"},
    )
    directed: bool = field(default=False, metadata={"help": "directed edges (default: undirected)"})
    squared: bool = field(
        default=False, metadata={"help": "initial weight = squared target distance (default: the distance)"}
    )
    init_p: float = field(default=0.9, metadata={"help": "initial keep-probability of every edge"})
    soft: bool = field(
        default=True,
        metadata={"help": "soft search: sampled-out edges cost M >> sum(w), so a path always exists"},
    )
    search: Literal["auto", "full", "meet"] = field(
        default="auto",
        metadata={
            "help": "path search: full (Dijkstra per unique source), meet (capped forward/backward "
            "searches meeting in the middle, for few targets per source), auto (meet at <= 8 targets "
            "per source); exact either way"
        },
    )
    max_length: int = field(default=0, metadata={"help": "longest accepted path in edges (0: no limit)"})
    long_paths: Literal["flag", "reject", "error"] = field(
        default="flag",
        metadata={
            "help": "a path over max_length: flag (kept whole, counted), reject (treated as unreachable), error"
        },
    )
    logp_term: Literal["likelihood", "reinforce", "none"] = field(
        default="likelihood",
        metadata={
            "help": "path log-probability term: likelihood (the authors' code: -mean log p(path)), "
            "reinforce (mean (L_i - baseline) log p(path_i)), none"
        },
    )
    logp_weight: float = field(default=1.0, metadata={"help": "weight of the path log-probability term"})
    prior: Literal["l0", "hierarchical"] = field(
        default="l0", metadata={"help": "sparsity prior: l0 (expected kept fraction) or hierarchical"}
    )
    prior_rate: float = field(default=0.05, metadata={"help": "hierarchical prior: target kept rate"})
    prior_concentration: float = field(
        default=0.0,
        metadata={"help": "hierarchical prior: Beta concentration s (0: Bernoulli(rate) quantiles)"},
    )
    prior_edges: int = field(default=4096, metadata={"help": "edges sampled per step for the prior (0: all)"})
    free_edge: bool = field(
        default=False, metadata={"help": "l0 prior: exempt each vertex's most probable edge"}
    )
    sparsity: float = field(default=1.0, metadata={"help": "lambda: weight of the prior once ramped up"})
    sparsity_ramp: int = field(default=1000, metadata={"help": "steps of the linear lambda ramp from 0"})
    params_per_vertex: float = field(
        default=0.0,
        metadata={
            "help": "size budget: after training keep the most probable edges so V+2E+1 <= this * V (0: none)"
        },
    )
    lr: float = field(default=0.05, metadata={"help": "SparseAdam learning rate of the edge parameters"})
    lr_dense: float = field(default=0.01, metadata={"help": "Adam learning rate of dense parameters"})
    prune_every: int = field(
        default=100, metadata={"help": "steps between prunings during training (0: never)"}
    )
    prune_to_budget: bool = field(
        default=True,
        metadata={
            "help": "with params_per_vertex and prune_every: each pruning also keeps the most probable "
            "edges on a cubic schedule from all edges down to the budget at the last pruning"
        },
    )
    prune_threshold: float = field(default=0.5, metadata={"help": "pruning removes edges with p below this"})
    prune_lr_decay: float = field(
        default=1.0, metadata={"help": "multiply the learning rates at each pruning"}
    )

    def validate(self):
        if self.knn < 0 or self.random_edges < 0 or self.virtual_vertices < 0:
            raise ValueError("knn, random_edges and virtual_vertices must be >= 0")
        if self.knn + self.random_edges == 0:
            raise ValueError("knn + random_edges must be >= 1: the initial graph needs edges")
        if not 0 < self.init_p < 1:
            raise ValueError(f"init_p must be in (0, 1), got {self.init_p}")
        if not 0 < self.prune_threshold < 1:
            raise ValueError(f"prune_threshold must be in (0, 1), got {self.prune_threshold}")
        if not 0 < self.prior_rate < 1:
            raise ValueError(f"prior_rate must be in (0, 1), got {self.prior_rate}")
        for name in ("max_length", "prior_edges", "sparsity_ramp", "prune_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("logp_weight", "sparsity", "prior_concentration", "params_per_vertex"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.params_per_vertex and self.params_per_vertex < 1:
            raise ValueError(
                f"params_per_vertex must be >= 1 (one slice offset per vertex), got {self.params_per_vertex}"
            )
        if self.lr <= 0 or self.lr_dense <= 0 or not 0 < self.prune_lr_decay <= 1:
            raise ValueError("lr and lr_dense must be > 0, prune_lr_decay in (0, 1]")


@dataclass
class ProdigeTrainConfig(TrainConfig):
    """The budget of a fit. A step runs one Dijkstra per source: ``batch_size`` sources, each with
    ``targets_per_source`` random targets (0: every vertex, which costs little more than one)."""

    steps: int = field(
        default=1000,
        metadata={"help": "optimisation steps (the pruning schedule depends on it: fixed on resume)"},
    )
    batch_size: int = field(default=16, metadata={"help": "source vertices per step (one Dijkstra each)"})
    targets_per_source: int = field(
        default=0, metadata={"help": "random targets per source (0: all vertices)"}
    )
    finetune_steps: int = field(
        default=0,
        metadata={
            "help": "after the final pruning, steps training the weights of the kept edges (eval graph)"
        },
    )
    checkpoint_every: int = field(
        default=0, metadata={"help": "steps between checkpoints (0: only at the end)", "resume": "free"}
    )
    log_every: int = field(default=50, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})

    def validate(self):
        super().validate()
        if self.targets_per_source < 0 or self.finetune_steps < 0:
            raise ValueError("targets_per_source and finetune_steps must be >= 0")
