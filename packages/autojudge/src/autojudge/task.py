"""The built-in task: seeded arithmetic chains with a checkable answer and answer-neutral wording.

A problem gives a start value and a chain of steps, each with its own label, e.g.
``Q: a=7, b*B3, c-C8.`` (``b`` is ``a*3``, ``c`` is ``b-8``), and a solution computes each step and
ends with ``#### N``::

    Q: a=7, b*B3, c-C8.
    A: We have a=7. So b*B3=21. So c-C8=13. Answer: 13. #### 13

Every label (``b`` before the operator, its uppercase twin ``B`` before the operand) occurs exactly
once in the prompt, so each operator and operand a solution restates directly follows a unique
character there (a one-token lookup that tiny models learn quickly; the
earlier ``b=a*3`` format needed a two-token lookup after a common ``=``, and CPU-sized models
stayed near 10% accuracy).

The wording has **style slots** that never change the answer: an optional restatement of the
start value, a connective before each step (``So``/``Then``/``Thus``/none), spacing around each
step's ``=`` (``b*B3=21`` or ``b*B3 = 21``) and an optional ``Answer: N.`` line before ``####``. A
:class:`StylePolicy` draws each slot; the target and draft models are trained on text drawn with
different policies (so their greedy outputs differ in style), and the draft is weaker (so they also
differ in digits).

Ground truth for a mismatch (:func:`oracle_important`): the alternative prefix is *unimportant*
when it is still a prefix of some rendering, in any style, of the same step values as the
current response; otherwise it is *important*. This is independent of the miner, so the mined
labels can be scored against it.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field

VARS = "abcde"
CONNECTIVES = ("So ", "Then ", "Thus ", "")
EQUALS = ("=", " = ")
MAX_VALUE = 99
TASK_VERSION = 4
# Versions of the task: values up to ``max_value``, ``num_steps`` steps. ``builtin-small`` is the
# demo's: one step on values up to 19, which a 3-layer model learns within the demo's minute of
# training (on the full task it still mis-copies operators and operands from the prompt then).
VARIANTS = {"builtin": (MAX_VALUE, (2, 4)), "builtin-small": (19, (1, 1))}


@dataclass(frozen=True)
class Problem:
    """A start value and ``(op, k)`` steps; variable ``i`` is ``VARS[i]``."""

    start: int
    steps: tuple[tuple[str, int], ...]
    uid: str = ""

    def values(self) -> list[int]:
        vals = [self.start]
        for op, k in self.steps:
            vals.append(_apply(vals[-1], op, k))
        return vals

    @property
    def answer(self) -> int:
        return self.values()[-1]

    @property
    def prompt(self) -> str:
        chain = ", ".join(
            [f"a={self.start}"]
            + [f"{VARS[i + 1]}{op}{VARS[i + 1].upper()}{k}" for i, (op, k) in enumerate(self.steps)]
        )
        return f"Q: {chain}.\nA:"


def _apply(x: int, op: str, k: int) -> int:
    return x + k if op == "+" else x - k if op == "-" else x * k


def make_problem(
    rng: random.Random, uid: str = "", max_value: int = MAX_VALUE, num_steps: tuple[int, int] = (2, 4)
) -> Problem:
    """A random problem: start 2..9, ``num_steps`` (2..4) steps of +k, -k (k 1..9) or *k (k 2..3),
    values in 0..max_value."""
    start = rng.randint(2, 9)
    steps, x = [], start
    for _ in range(rng.randint(*num_steps)):
        options = [("+", k) for k in range(1, 10) if x + k <= max_value]
        options += [("-", k) for k in range(1, 10) if x - k >= 0]
        options += [("*", k) for k in (2, 3) if x * k <= max_value]
        op, k = rng.choice(options)
        steps.append((op, k))
        x = _apply(x, op, k)
    return Problem(start, tuple(steps), uid)


def _variant(variant: str) -> tuple[int, tuple[int, int], str]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown task variant {variant!r}: choose from {', '.join(VARIANTS)}")
    max_value, num_steps = VARIANTS[variant]
    return max_value, num_steps, "" if variant == "builtin" else f"-{variant}"


def problems(n: int, seed: int = 0, split: str = "eval", variant: str = "builtin") -> list[Problem]:
    """``n`` problems of a task variant, deterministic in ``(seed, split, variant)`` (each problem has
    its own generator, so the first ``n`` of a longer list are the same)."""
    max_value, num_steps, suffix = _variant(variant)
    tag = split + suffix
    return [
        make_problem(random.Random(f"{tag}-{seed}-{i}"), f"{tag}-{seed}-{i}", max_value, num_steps)
        for i in range(n)
    ]


@dataclass(frozen=True)
class StylePolicy:
    """Probabilities of each answer-neutral wording choice."""

    restate: float
    connectives: tuple[float, ...]  # weights over CONNECTIVES
    spaced: float  # write ``b*B3 = 21`` instead of ``b*B3=21``
    answer_line: float
    name: str = field(default="", compare=False)


# The habits differ in every step's connective ("So" against "Then") and spacing around "=". Both
# restate the start value and write the "Answer:" line by habit (v2 had the draft skip both): the
# miner accepted "skip this line" swaps and then never saw a mismatch inside those lines, while
# decoding along the target's path meets them, and a judge trained on v2 labels accepted wrong
# answer-line digits with P(important) < 1e-3. The target still writes "So" and "=" greedily, but
# v4 trains it on "Then" and " = " often enough (35% and 40% of slots) that it keeps its answer
# after swapped-in draft wording: with v3's mix (25%, 30%) it mis-copied operands after two "Then"s
# in a row, so most style swaps changed the answer and were mined as important.
TARGET_STYLE = StylePolicy(0.7, (0.45, 0.35, 0.05, 0.15), 0.4, 0.7, name="target")
DRAFT_STYLE = StylePolicy(0.7, (0.15, 0.6, 0.1, 0.15), 0.8, 0.7, name="draft")


def step_options(i: int, op: str, k: int, value: int) -> list[str]:
    """Every rendering of step ``i`` (computing ``VARS[i+1]``) with the given value."""
    return [
        f" {c}{VARS[i + 1]}{op}{VARS[i + 1].upper()}{k}{eq}{value}." for c in CONNECTIVES for eq in EQUALS
    ]


def render(problem: Problem, rng: random.Random, style: StylePolicy, values: list[int] | None = None) -> str:
    """A solution text (after ``A:``) drawn from ``style``."""
    vals = values or problem.values()
    parts = [f" We have a={problem.start}." if rng.random() < style.restate else ""]
    for i, (op, k) in enumerate(problem.steps):
        conn = rng.choices(CONNECTIVES, weights=style.connectives)[0]
        eq = EQUALS[1] if rng.random() < style.spaced else EQUALS[0]
        parts.append(f" {conn}{VARS[i + 1]}{op}{VARS[i + 1].upper()}{k}{eq}{vals[i + 1]}.")
    if rng.random() < style.answer_line:
        parts.append(f" Answer: {vals[-1]}.")
    parts.append(f" #### {vals[-1]}")
    return "".join(parts)


def corpus(style: StylePolicy, n: int, seed: int, variant: str = "builtin") -> list[str]:
    """``n`` documents ``prompt + solution`` of a task variant for language-model training."""
    max_value, num_steps, suffix = _variant(variant)
    rng = random.Random(f"corpus-{style.name}-{seed}{suffix}")
    out = []
    for i in range(n):
        p = make_problem(rng, str(i), max_value, num_steps)
        out.append(p.prompt + render(p, rng, style))
    return out


_STEP = re.compile(r"([a-e])[-+*][A-E]\d+ ?= ?(\d+)\.")


def parse_values(problem: Problem, solution: str) -> list[int] | None:
    """Step values written in a solution text (start value first), or None when a step is missing."""
    found = {m.group(1): int(m.group(2)) for m in _STEP.finditer(solution)}
    vals = [problem.start]
    for i in range(len(problem.steps)):
        if VARS[i + 1] not in found:
            return None
        vals.append(found[VARS[i + 1]])
    return vals


def consistent_prefix(problem: Problem, values: list[int], prefix: str, ended: bool = False,
                      first_slot: int = 0) -> bool:  # fmt: skip
    """Whether ``prefix`` (``ended``: followed by EOS) starts some rendering of ``values``, in any style
    (from slot ``first_slot`` on: 0 restatement, i + 1 step i, then the answer and final lines)."""
    parts = [[f" We have a={problem.start}.", ""]]
    parts += [step_options(i, op, k, values[i + 1]) for i, (op, k) in enumerate(problem.steps)]
    parts += [[f" Answer: {values[-1]}.", ""], [f" #### {values[-1]}"]]

    def walk(i: int, rem: str) -> bool:
        if i == len(parts):
            return rem == ""
        for s in parts[i]:
            if rem.startswith(s) and walk(i + 1, rem[len(s) :]):
                return True
            if not ended and s.startswith(rem) and rem:
                return True
        return False

    return walk(first_slot, prefix) or (not ended and prefix == "")


def _slot(problem: Problem, segment: str) -> int | None:
    """Index in the rendering's slots (restatement, steps, answer line, final line) of a written segment."""
    seg = segment.strip()
    if seg.startswith("We have"):
        return 0
    if seg.startswith("Answer:"):
        return len(problem.steps) + 1
    m = re.match(r"(?:(?:So|Then|Thus) )?([b-e])[-+*]", seg)
    return VARS.index(m.group(1)) if m and VARS.index(m.group(1)) <= len(problem.steps) else None


def oracle_important(problem: Problem, current: str, alternative: str, ended: bool = False) -> bool | None:
    """Known importance of a mismatch: ``alternative`` (the current response up to the swapped-in draft
    token, solution text only; ``ended`` when that token is EOS) is important when no rendering of the
    current response's step values continues it. None when ``current`` does not parse.

    Segments (``.``-terminated sentences) written before the mismatch are taken as given, even when
    they deviate from every rendering (an earlier swap the miner accepted, such as an operator the
    target then ignored): the oracle judges the swapped-in token, not the history.
    """
    vals = parse_values(problem, current)
    if vals is None:
        return None
    shared = os.path.commonprefix([current, alternative])
    cut = shared.rfind(".") + 1
    if cut:
        start = _slot(problem, shared[: cut - 1].rsplit(".", 1)[-1] + ".")
        if start is not None:
            return not consistent_prefix(problem, vals, alternative[cut:], ended, first_slot=start + 1)
    return not consistent_prefix(problem, vals, alternative, ended)
