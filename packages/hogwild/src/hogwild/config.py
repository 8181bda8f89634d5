"""Options of a Hogwild! generation run, as a versioned dataclass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from hogwild.prompts import DEFAULT_NAMES

CONFIG_VERSION = 1
LAYOUTS = ("combined", "contiguous", "interleaved")
MAX_WORKERS = 64
MAX_BUDGET = 1_000_000

Layout = Literal["combined", "contiguous", "interleaved"]


@dataclass
class GenerateConfig:
    """How the workers are laid out, decode and stop."""

    workers: int = field(default=2, metadata={"help": f"number of workers (1..{MAX_WORKERS})"})
    names: tuple[str, ...] = field(
        default=(), metadata={"help": "worker names (default: Alice, Bob, Carol, ...)"}
    )
    layout: Layout = field(default="combined", metadata={"help": "combined, contiguous or interleaved"})
    budget: int = field(default=512, metadata={"help": "forward passes (each emits one token per worker)"})
    temperature: float = field(default=0.0, metadata={"help": "0: greedy; > 0: sampling"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (with temperature > 0)"})
    check_every: int = field(
        default=256,
        metadata={
            "help": "tokens after which a worker's next step opens with the redundancy check (0: never)"
        },
    )
    finisher: bool = field(
        default=True, metadata={"help": "force an answer with a short greedy decode when the budget runs out"}
    )
    finisher_tokens: int = field(default=16, metadata={"help": "tokens the finisher may decode"})
    suppress: tuple[str, ...] = field(
        default=("#", " #", "##", "</think>"),
        metadata={"help": "texts whose single tokens are never sampled (BOS and EOS always are)"},
    )
    few_shot: bool = field(default=True, metadata={"help": "include the worked collaboration examples"})
    chat_template: bool = field(
        default=True, metadata={"help": "wrap the prompt in the tokenizer's chat template when it has one"}
    )
    record_at: tuple[int, ...] = field(
        default=(), metadata={"help": "budgets at which to record the answer (finisher applied if needed)"}
    )
    backend: str = field(default="auto", metadata={"help": "attention backend: auto, triton or torch"})
    seed: int = 0
    version: int = CONFIG_VERSION

    def __post_init__(self):
        if self.version != CONFIG_VERSION:
            raise ValueError(f"version must be {CONFIG_VERSION} (this hogwild release), got {self.version}")
        if not (isinstance(self.workers, int) and 1 <= self.workers <= MAX_WORKERS):
            raise ValueError(f"workers must be an integer in 1..{MAX_WORKERS}, got {self.workers!r}")
        self.names = tuple(self.names)
        self.suppress = tuple(self.suppress)
        if not self.names:
            if self.workers > len(DEFAULT_NAMES):
                self.names = tuple(f"Worker{i + 1}" for i in range(self.workers))
            else:
                self.names = DEFAULT_NAMES[: self.workers]
        if len(self.names) != self.workers:
            raise ValueError(f"names lists {len(self.names)} names for {self.workers} workers")
        if len(set(self.names)) != len(self.names) or any(not n.strip() for n in self.names):
            raise ValueError(f"names must be distinct and non-empty, got {list(self.names)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        if not (isinstance(self.budget, int) and 1 <= self.budget <= MAX_BUDGET):
            raise ValueError(
                f"budget must be an integer in 1..{MAX_BUDGET} forward passes, got {self.budget!r}"
            )
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.check_every < 0 or self.finisher_tokens < 1:
            raise ValueError("check_every must be >= 0 and finisher_tokens >= 1")
        self.record_at = tuple(sorted(set(int(b) for b in self.record_at)))
        if any(b < 1 or b > self.budget for b in self.record_at):
            raise ValueError(
                f"record_at budgets must be in 1..budget ({self.budget}), got {list(self.record_at)}"
            )
        if self.backend not in ("auto", "triton", "torch"):
            raise ValueError(f"backend must be auto, triton or torch; got {self.backend!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
