"""Options of a Hogwild! generation run: :class:`GenerateConfig`, a :class:`papercore.config.Config`.

The sampling seed is not part of the config: it is a run option, the common ``--seed`` of every
``hogwild`` command and the ``seed=`` keyword of :func:`hogwild.generate`, :class:`hogwild.Hogwild`
and :func:`hogwild.evaluate.evaluate`. Version 1 of the config carried a ``seed`` field; a saved
version-1 dict still loads (``GenerateConfig.from_dict`` drops the field; the seed of a run is in
the ``common`` section of its ``resolved_config.json`` and in ``results.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hogwild.prompts import DEFAULT_NAMES
from papercore.config import Config

LAYOUTS = ("combined", "contiguous", "interleaved")
MAX_WORKERS = 64
MAX_BUDGET = 1_000_000

Layout = Literal["combined", "contiguous", "interleaved"]
Backend = Literal["auto", "triton", "torch"]


def _v1_to_v2(d: dict) -> dict:
    d.pop("seed", None)  # the seed became a run option (the common --seed / the seed= keyword)
    return d


def default_names(workers: int) -> tuple[str, ...]:
    """Alice, Bob, Carol, ... (Worker1, Worker2, ... beyond the built-in names)."""
    if workers > len(DEFAULT_NAMES):
        return tuple(f"Worker{i + 1}" for i in range(workers))
    return DEFAULT_NAMES[:workers]


@dataclass
class GenerateConfig(Config):
    """How the workers are laid out, decode and stop.

    ``names`` empty means the default names (:attr:`worker_names`). The sampling seed is a run
    option, not a field (see the module docstring).
    """

    VERSION = 2
    MIGRATIONS = {1: _v1_to_v2}

    workers: int = field(default=2, metadata={"help": f"number of workers (1..{MAX_WORKERS})"})
    names: tuple[str, ...] = field(
        default=(), metadata={"help": "worker names, one per worker (empty: Alice, Bob, Carol, ...)"}
    )
    layout: Layout = field(default="combined", metadata={"help": "combined, contiguous or interleaved"})
    budget: int = field(
        default=512, metadata={"help": f"forward passes (each emits one token per worker; 1..{MAX_BUDGET})"}
    )
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
        default=(),
        metadata={
            "help": "budgets at which to record the answer (finisher applied if needed; eval scores them)"
        },
    )
    backend: Backend = field(default="auto", metadata={"help": "attention backend: auto, triton or torch"})

    @property
    def worker_names(self) -> tuple[str, ...]:
        """``names``, or the default names for ``workers``."""
        return self.names or default_names(self.workers)

    def validate(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be an integer in 1..{MAX_WORKERS}, got {self.workers!r}")
        if self.names and len(self.names) != self.workers:
            raise ValueError(f"names lists {len(self.names)} names for {self.workers} workers")
        if len(set(self.names)) != len(self.names) or any(not n.strip() for n in self.names):
            raise ValueError(f"names must be distinct and non-empty, got {list(self.names)}")
        if not 1 <= self.budget <= MAX_BUDGET:
            raise ValueError(
                f"budget must be an integer in 1..{MAX_BUDGET} forward passes, got {self.budget!r}"
            )
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.check_every < 0:
            raise ValueError(f"check_every must be >= 0, got {self.check_every}")
        if self.finisher_tokens < 1:
            raise ValueError(f"finisher_tokens must be >= 1, got {self.finisher_tokens}")
        self.record_at = tuple(sorted(set(self.record_at)))
        if any(b < 1 or b > self.budget for b in self.record_at):
            raise ValueError(
                f"record_at budgets must be in 1..budget ({self.budget}), got {list(self.record_at)}"
            )
