"""The generation driver: W workers decoding in lock-step over a shared cache.

One forward pass feeds every worker's pending tokens (usually one each) and samples one token per
worker. Layouts (block names in each worker's view, own block last):

* ``combined``: ``[common, others_header, step:B, sep:B, ..., own_header, step:A]``. ``common``
  holds the prompt and every finished step. A step ends on a blank line after a sentence; the
  worker's step block then moves into ``common`` (one re-rotation, :meth:`SharedCache.merge`) and
  the worker starts a new step with ``**A [k]:** ``.
* ``interleaved``: ``[common, step:A]``: the others are visible only through finished steps.
* ``contiguous``: ``[prompt, ws:B, sep:B, ..., ws:A]``: whole workspaces, token by token; steps
  are only counted.

Every ``check_every`` tokens a worker's next step opens with the redundancy question. The run
stops when a step holds a parseable ``\\boxed{}`` answer or after ``budget`` forward passes; then,
without an answer, the finisher serialises everything into one sequence and decodes the answer
greedily with an ordinary cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hogwild.answers import complete_braces, extract_boxed
from hogwild.cache import Row
from hogwild.config import GenerateConfig
from hogwild.model import Engine
from hogwild.prompts import (
    CHECK_QUESTION,
    FINISHER_SUFFIX,
    HISTORY_HEADER,
    OTHERS_HEADER,
    OWN_HEADER,
    SEPARATOR,
    Prompts,
    check_tokenizer,
)

SENTENCE_END = ".!?"
CLOSERS = "*)]$\"'`"


def step_ended(text: str) -> bool:
    """A step ends with a blank line right after sentence-ending punctuation (closing marks allowed)."""
    if not text.endswith("\n\n"):
        return False
    body = text.rstrip().rstrip(CLOSERS)
    return bool(body) and body[-1] in SENTENCE_END


@dataclass
class StepRecord:
    worker: str
    index: int
    tokens: int
    finished_at: int  # forward pass
    text: str


@dataclass
class HogwildResult:
    answer: str | None
    finished_by: str  # "answer", "finisher", "budget" (no answer) or "interrupted"
    forward_passes: int
    workers: dict[str, str]
    history: list[StepRecord]
    tokens: dict[str, int]
    records: dict[int, str | None] = field(default_factory=dict)
    prompt: str = ""
    seconds: float = 0.0


@dataclass
class _Worker:
    name: str
    block: str
    view: list[str]
    pending: list[int]
    step_tokens: list[int]
    step_index: int = 1
    prefix_len: int = 0
    generated: int = 0
    since_check: int = 0
    split_at: int | None = None
    steps: list[str] = field(default_factory=list)


class Hogwild:
    """One run of the driver (see the module docstring); :meth:`run` returns a :class:`HogwildResult`.

    ``seed`` seeds the sampling (``temperature > 0``); it is a run option, not a config field.
    """

    def __init__(
        self,
        engine: Engine,
        tokenizer,
        problem: str,
        config: GenerateConfig | None = None,
        callback: Callable[[Hogwild], None] | None = None,
        *,
        seed: int = 0,
    ):
        self.engine, self.tok, self.problem = engine, tokenizer, problem
        self.cfg = config or GenerateConfig()
        self.names = self.cfg.worker_names
        self.callback = callback
        self.prompts = Prompts(self.names, self.cfg.layout, self.cfg.few_shot)
        check_tokenizer(tokenizer, self.prompts.pieces())
        self.suppress = self._suppress_ids()
        self.history: list[StepRecord] = []
        self.answer: str | None = None
        self.records: dict[int, str | None] = {}
        self.passes = 0
        self.generator = torch.Generator().manual_seed(seed)  # sampling only (greedy needs none)
        self.workers: list[_Worker] = []
        self.prompt_text = ""

    # ------------------------------------------------------------------ helpers
    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)

    def _suppress_ids(self) -> list[int]:
        ids = set()
        for text in self.cfg.suppress:
            enc = self.encode(text)
            if len(enc) == 1:
                ids.add(enc[0])
        for attr in ("bos_token_id", "eos_token_id"):
            v = getattr(self.tok, attr, None)
            if isinstance(v, int):
                ids.add(v)
        return sorted(ids)

    def _prompt(self) -> tuple[str, list[int]]:
        text = self.prompts.shared_prompt(self.problem)
        template = getattr(self.tok, "chat_template", None)
        if self.cfg.chat_template and template:
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            if self.cfg.layout != "contiguous":
                text += HISTORY_HEADER
            return text, self.encode(text)
        if self.cfg.layout != "contiguous":
            text += HISTORY_HEADER
        return text, list(self.tok.encode(text))

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cache, names, layout = self.engine.cache, self.names, self.cfg.layout
        cache.reset()  # an engine is reused across problems: start from an empty cache
        self.prompt_text, prompt_ids = self._prompt()
        if not prompt_ids:
            raise ValueError("the prompt encodes to no tokens")
        for name in ("common", *(f"sep:{n}" for n in names)):
            cache.create(name, capacity=max(64, len(prompt_ids) if name == "common" else 16))
        self.engine.prefill("common", prompt_ids)
        shared = {f"sep:{n}": SEPARATOR for n in names}
        if layout == "combined" and len(names) > 1:
            shared.update({"others_header": OTHERS_HEADER, "own_header": OWN_HEADER})
        rows = []
        for block, text in shared.items():
            if block not in cache:
                cache.create(block, capacity=16)
            rows.append(Row(block, ["common", block], self.encode(text)))
        self.engine.step(rows)  # prefill the shared headers and separators (not counted in the budget)
        for name in names:
            block = f"{'ws' if layout == 'contiguous' else 'step'}:{name}"
            cache.create(block, capacity=256)
            others = [b for o in names if o != name for b in (f"{block.split(':')[0]}:{o}", f"sep:{o}")]
            if layout == "combined":
                view = [
                    "common",
                    *((["others_header", *others, "own_header"]) if len(names) > 1 else []),
                    block,
                ]
            elif layout == "interleaved":
                view = ["common", block]
            else:
                view = ["common", *others, block]
            if layout == "contiguous":
                first = self.encode(self.prompts.workspace_header(name) + self.prompts.opening(name))
                prefix_len = 0
            else:
                prefix = self.encode(self.prompts.step_prefix(name, 1))
                first = prefix + self.encode(self.prompts.opening(name))
                prefix_len = len(prefix)
            self.workers.append(_Worker(name, block, view, first, list(first), prefix_len=prefix_len))

    # ------------------------------------------------------------------ decoding
    def sample(self, logits: torch.Tensor) -> list[int]:
        logits = logits.float().clone()
        if self.suppress:
            logits[:, self.suppress] = float("-inf")
        if self.cfg.temperature == 0:
            return logits.argmax(dim=-1).tolist()
        probs = torch.softmax(logits / self.cfg.temperature, dim=-1).cpu()
        if self.cfg.top_p < 1:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > self.cfg.top_p
            sorted_p[drop] = 0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0].tolist()

    def _end_step(self, w: _Worker, token: int) -> None:
        text = self.decode(w.step_tokens)
        w.steps.append(text)
        self.history.append(StepRecord(w.name, w.step_index, len(w.step_tokens), self.passes, text))
        w.step_index += 1
        nxt = "" if self.cfg.layout == "contiguous" else self.prompts.step_prefix(w.name, w.step_index)
        w.prefix_len = len(self.encode(nxt)) if nxt else 0
        if self.cfg.check_every and w.since_check >= self.cfg.check_every:
            nxt += CHECK_QUESTION
            w.since_check = 0
        new = self.encode(nxt) if nxt else []
        if self.cfg.layout != "contiguous":
            # after the next pass writes `token` and the new prefix, the finished step moves to history
            w.split_at = self.engine.cache.length(w.block) + 1
        w.pending = [token, *new]
        w.step_tokens = list(new)

    def _after_pass(self, logits: torch.Tensor) -> None:
        for w in self.workers:
            if w.split_at is not None:
                self.engine.cache.merge("common", w.block, w.split_at)
                w.split_at = None
        for w, t in zip(self.workers, self.sample(logits)):
            w.step_tokens.append(t)
            w.generated += 1
            w.since_check += 1
            piece = self.decode([t])
            if "}" in piece and self.answer is None:
                found = extract_boxed(self.decode(w.step_tokens))
                if found is not None:
                    self.answer = found
            if (
                "\n" in piece
                and len(w.step_tokens) > w.prefix_len + 1
                and step_ended(self.decode(w.step_tokens))
            ):
                self._end_step(w, t)
            else:
                w.pending = [t]

    def run(self) -> HogwildResult:
        t0 = time.perf_counter()
        if not self.workers:
            self.setup()
        finished_by = "budget"
        while self.passes < self.cfg.budget:
            logits = self.engine.step([Row(w.block, w.view, w.pending) for w in self.workers])
            self.passes += 1
            self._after_pass(logits)
            if self.callback is not None:
                self.callback(self)
            if self.passes in self.cfg.record_at:
                self.records[self.passes] = self.answer if self.answer is not None else self.finish()
            if self.answer is not None:
                finished_by = "answer"
                break
        if self.answer is None and self.cfg.finisher:
            recorded = self.records.get(self.passes, False)  # already finished at this budget
            self.answer = recorded if recorded is not False else self.finish()
            if self.answer is not None:
                finished_by = "finisher"
        for b in self.cfg.record_at:  # budgets after an early answer record that answer
            self.records.setdefault(b, self.answer)
        return self.result(finished_by, time.perf_counter() - t0)

    # ------------------------------------------------------------------ results
    def worker_texts(self) -> dict[str, str]:
        return {w.name: "".join(w.steps) + self.decode(w.step_tokens) for w in self.workers}

    def serialized(self) -> str:
        """Everything written so far as one text: prompt, finished steps, then the steps in progress."""
        if self.cfg.layout == "contiguous":
            body = "".join(
                self.prompts.workspace_header(n) + t + SEPARATOR for n, t in self.worker_texts().items()
            )
            return self.prompt_text + body
        done = "".join(s.text for s in self.history)
        current = "".join(
            self.decode(w.step_tokens) + SEPARATOR for w in self.workers if len(w.step_tokens) > w.prefix_len
        )
        return self.prompt_text + done + current

    def finish(self) -> str | None:
        """The finisher: greedy decode after the serialised state and a forced ``\\boxed{``."""
        ids = list(self.tok.encode(self.serialized() + FINISHER_SUFFIX, add_special_tokens=False))
        out = self.engine.complete(ids, self.cfg.finisher_tokens, self.suppress)
        return complete_braces(self.decode(out))

    def result(self, finished_by: str, seconds: float = 0.0) -> HogwildResult:
        return HogwildResult(
            answer=self.answer,
            finished_by=finished_by,
            forward_passes=self.passes,
            workers=self.worker_texts(),
            history=list(self.history),
            tokens={w.name: w.generated for w in self.workers},
            records=dict(self.records),
            prompt=self.prompt_text,
            seconds=seconds,
        )


def generate(
    model,
    tokenizer,
    problem: str,
    *,
    workers: int | None = None,
    layout: str | None = None,
    config: GenerateConfig | None = None,
    callback: Callable[[Hogwild], None] | None = None,
    seed: int = 0,
    **overrides,
) -> HogwildResult:
    """Solve ``problem`` with ``workers`` parallel workers over one shared cache.

    ``model`` is a transformers causal LM (or an :class:`~hogwild.model.Engine`); the other options
    are :class:`~hogwild.config.GenerateConfig` fields (``budget``, ``temperature``, ``names``, ...),
    applied over ``config``. ``seed`` seeds the sampling.
    """
    cfg = config or GenerateConfig()
    changes = dict(overrides)
    if workers is not None:
        changes["workers"] = workers
        if "names" not in changes and cfg.names and len(cfg.names) != workers:
            changes["names"] = ()  # the config's names were for another worker count
    if layout is not None:
        changes["layout"] = layout
    unknown = sorted(set(changes) - set(GenerateConfig.field_names()))
    if unknown:
        raise TypeError(
            f"generate() got unknown option(s) {', '.join(unknown)}; "
            f"GenerateConfig fields: {', '.join(GenerateConfig.field_names())}"
        )
    cfg = cfg.replace(**changes) if changes else cfg
    engine = (
        model if isinstance(model, Engine) else Engine(model, backend=cfg.backend, pad_id=_pad_id(tokenizer))
    )
    return Hogwild(engine, tokenizer, problem, cfg, callback, seed=seed).run()


def _pad_id(tokenizer) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, int):
            return v
    return 0
