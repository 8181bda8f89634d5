"""The configs of AutoJudge, each a :class:`papercore.config.Config` (versioned, type-checked, JSON).

* :class:`SpecConfig`: one speculative decoding run (window, acceptance mode, threshold, ...);
* :class:`TaskConfig`: how a problem is posed and its answer read (checker, answer length, chat
  template), shared by mining and evaluation;
* :class:`MineConfig`: the semi-greedy search and how much to mine;
* :class:`JudgeConfig`: the judge's features, split and fit;
* :class:`EvalConfig`: the methods an evaluation compares.

Run options (model names, data, output folders, shards) are not here: they are the CLI's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config

MODES = ("lossless", "judge", "topk", "random", "accept_all")
Mode = Literal["lossless", "judge", "topk", "random", "accept_all"]
FOLLOW = ("alternative", "target", "both")
SETUPS = ("DD-DT", "DT")
# The paper's C grid: (sqrt 10)^-k for k = 1..14, plus 1, 3, 10, 50, 100.
C_GRID = tuple(math.sqrt(10) ** -k for k in range(1, 15)) + (1.0, 3.0, 10.0, 50.0, 100.0)


@dataclass
class SpecConfig(Config):
    """Options of one speculative decoding run."""

    window: int = field(default=16, metadata={"help": "W: draft tokens proposed per cycle"})
    mode: Mode = field(
        default="lossless",
        metadata={
            "help": "lossless (target greedy), judge, topk, random (control), accept_all (draft greedy)"
        },
    )
    threshold: float = field(
        default=0.5, metadata={"help": "judge: accept a mismatch when P(important) < threshold"}
    )
    top_k: int = field(default=2, metadata={"help": "topk: accept a draft token in the target's top K"})
    accept_prob: float = field(
        default=0.5, metadata={"help": "random: accept a mismatch with this probability"}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "tokens to generate at most"})
    seed: int = field(
        default=0, metadata={"cli": False, "help": "seed of the random mode (the CLI's --seed)"}
    )

    def validate(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 <= self.accept_prob <= 1.0:
            raise ValueError(f"accept_prob must be in [0, 1], got {self.accept_prob}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class TaskConfig(Config):
    """How a problem is posed and its answer read (the same for mining and evaluation)."""

    checker: str = field(
        default="auto",
        metadata={"help": "auto (consistent on the built-in task, else gsm8k), gsm8k (#### or \\boxed{}), "
                  "consistent (every stated answer agrees), code, or module:function"},
    )  # fmt: skip
    max_new_tokens: int = field(default=128, metadata={"help": "answer length budget in tokens"})
    chat_template: bool = field(
        default=True,
        metadata={"help": "wrap prompts of real models in the tokenizer's chat template when it has one"},
    )

    def validate(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.checker:
            raise ValueError(
                "checker must not be empty: use auto, gsm8k, consistent, code or module:function"
            )


@dataclass
class MineConfig(Config):
    """The semi-greedy search, and how much to mine."""

    follow: Literal["alternative", "target", "both"] = field(
        default="alternative",
        metadata={"help": "alternative (the paper's search), target (label along the target's own "
                  "response) or both (the union)"},
    )  # fmt: skip
    min_per_class: int = field(
        default=10,
        metadata={"help": "mine problems beyond --num-problems until both labels have this many "
                  "mismatches (0: never; single-shard runs only)"},
    )  # fmt: skip
    max_problems: int = field(
        default=1000,
        metadata={"help": "cap on the problems mined in all when mining more for --min-per-class"},
    )
    max_failed_share: float = field(
        default=0.1,
        metadata={"help": "fail when the checker finds no answer in the target's own response on more "
                  "than this share of problems (those problems are skipped)"},
    )  # fmt: skip

    # settings that may change between a run and its resume (how much to mine, not how)
    RESUMABLE = ("min_per_class", "max_problems", "max_failed_share")

    def validate(self):
        if self.min_per_class < 0:
            raise ValueError(f"min_per_class must be >= 0, got {self.min_per_class}")
        if self.max_problems < 1:
            raise ValueError(f"max_problems must be >= 1, got {self.max_problems}")
        if not 0.0 <= self.max_failed_share <= 1.0:
            raise ValueError(f"max_failed_share must be in [0, 1], got {self.max_failed_share}")


@dataclass
class JudgeConfig(Config):
    """Features, validation split and fit of the judge (StandardScaler + LogisticRegression)."""

    setup: Literal["DD-DT", "DT"] = field(
        default="DD-DT", metadata={"help": "features: draft and target hidden states, or the target's only"}
    )
    val_fraction: float = field(default=0.1, metadata={"help": "validation share of the problems"})
    split_seed: int = field(default=52, metadata={"help": "seed of the split by problem"})
    n_thresholds: int = field(
        default=26, metadata={"help": "thresholds saved: quantiles linspace(0, 1, n) of validation P"}
    )
    c_grid: tuple[float, ...] = field(
        default=C_GRID, metadata={"help": "inverse regularization strengths tried (best validation ROC-AUC)"}
    )
    train_on_all: bool = field(default=False, metadata={"help": "refit on all problems with the chosen C"})

    def validate(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.n_thresholds < 2:
            raise ValueError(f"n_thresholds must be >= 2, got {self.n_thresholds}")
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ValueError(f"c_grid must be non-empty and positive, got {self.c_grid}")


@dataclass
class EvalConfig(Config):
    """The methods an evaluation runs: target greedy, lossless, the judge at each threshold, top-K,
    accept-all, and random acceptance at the judge's rates."""

    window: int = field(default=16, metadata={"help": "W of every speculative method"})
    threshold_indices: list[int] | None = field(
        default=None, metadata={"help": "indices into the judge's thresholds (default: all)"}
    )
    top_ks: tuple[int, ...] = field(default=(2, 4, 8), metadata={"help": "K of the top-K baselines"})
    random_control: bool = field(
        default=True, metadata={"help": "also run random acceptance at the judge's acceptance rates"}
    )

    def validate(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if any(k < 1 for k in self.top_ks):
            raise ValueError(f"top_ks must be >= 1, got {self.top_ks}")
        if self.threshold_indices is not None and any(i < 0 for i in self.threshold_indices):
            raise ValueError(f"threshold_indices must be >= 0, got {self.threshold_indices}")
