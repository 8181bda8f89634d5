"""The built-in task: seeded arithmetic chains with a checkable answer and answer-neutral wording.

A problem gives a start value and a chain of steps, e.g. ``Q: a=7; b=a*3; c=b-8. c?`` and a
solution computes each variable and ends with ``#### N``::

    Q: a=7; b=a*3; c=b-8. c?
    A: We have a=7. So b=a*3=21. So c=b-8=13. #### 13

The wording has **style slots** that never change the answer: an optional restatement of the
start value, a connective before each step (``So``/``Then``/``Thus``/none), the operand order of
commutative steps (``a*3`` or ``3*a``) and an optional ``Answer: N.`` line before ``####``. A
:class:`StylePolicy` draws each slot; the target and draft models are trained on text drawn with
different policies (so their greedy outputs differ in style), and the draft is weaker (so they also
differ in digits).

Ground truth for a mismatch (:func:`oracle_important`): the alternative prefix is *unimportant*
when it is still a prefix of some rendering, in any style, of the same step values as the
current response; otherwise it is *important*. This is independent of the miner, so the mined
labels can be scored against it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

VARS = "abcde"
CONNECTIVES = ("So ", "Then ", "Thus ", "")
TASK_VERSION = 1


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
        chain = "; ".join(
            [f"a={self.start}"] + [f"{VARS[i + 1]}={VARS[i]}{op}{k}" for i, (op, k) in enumerate(self.steps)]
        )
        return f"Q: {chain}. {VARS[len(self.steps)]}?\nA:"


def _apply(x: int, op: str, k: int) -> int:
    return x + k if op == "+" else x - k if op == "-" else x * k


def make_problem(rng: random.Random, uid: str = "") -> Problem:
    """A random problem: start 2..9, 2..4 steps of +k, -k (k 1..9) or *k (k 2..3), values in 0..99."""
    start = rng.randint(2, 9)
    steps, x = [], start
    for _ in range(rng.randint(2, 4)):
        options = [("+", k) for k in range(1, 10) if x + k <= 99]
        options += [("-", k) for k in range(1, 10) if x - k >= 0]
        options += [("*", k) for k in (2, 3) if x * k <= 99]
        op, k = rng.choice(options)
        steps.append((op, k))
        x = _apply(x, op, k)
    return Problem(start, tuple(steps), uid)


def problems(n: int, seed: int = 0, split: str = "eval") -> list[Problem]:
    """``n`` problems, deterministic in ``(seed, split)`` (each problem has its own generator)."""
    return [make_problem(random.Random(f"{split}-{seed}-{i}"), uid=f"{split}-{seed}-{i}") for i in range(n)]


@dataclass(frozen=True)
class StylePolicy:
    """Probabilities of each answer-neutral wording choice."""

    restate: float
    connectives: tuple[float, ...]  # weights over CONNECTIVES
    commute: float  # write ``k*x`` instead of ``x*k`` (``+`` and ``*`` only)
    answer_line: float
    name: str = field(default="", compare=False)


# The target's habit: restate, "So", problem order, an "Answer:" line. The draft's: the opposite.
TARGET_STYLE = StylePolicy(0.8, (0.6, 0.15, 0.1, 0.15), 0.2, 0.8, name="target")
DRAFT_STYLE = StylePolicy(0.2, (0.15, 0.6, 0.1, 0.15), 0.8, 0.2, name="draft")


def step_options(i: int, op: str, k: int, value: int) -> list[str]:
    """Every rendering of step ``i`` (computing ``VARS[i+1]``) with the given value."""
    u, v = VARS[i], VARS[i + 1]
    exprs = [f"{u}{op}{k}"] + ([f"{k}{op}{u}"] if op in "+*" else [])
    return [f" {c}{v}={e}={value}." for c in CONNECTIVES for e in exprs]


def render(problem: Problem, rng: random.Random, style: StylePolicy, values: list[int] | None = None) -> str:
    """A solution text (after ``A:``) drawn from ``style``."""
    vals = values or problem.values()
    parts = [f" We have a={problem.start}." if rng.random() < style.restate else ""]
    for i, (op, k) in enumerate(problem.steps):
        conn = rng.choices(CONNECTIVES, weights=style.connectives)[0]
        u, v = VARS[i], VARS[i + 1]
        expr = f"{k}{op}{u}" if op in "+*" and rng.random() < style.commute else f"{u}{op}{k}"
        parts.append(f" {conn}{v}={expr}={vals[i + 1]}.")
    if rng.random() < style.answer_line:
        parts.append(f" Answer: {vals[-1]}.")
    parts.append(f" #### {vals[-1]}")
    return "".join(parts)


def corpus(style: StylePolicy, n: int, seed: int) -> list[str]:
    """``n`` documents ``prompt + solution`` for language-model training."""
    rng = random.Random(f"corpus-{style.name}-{seed}")
    out = []
    for i in range(n):
        p = make_problem(rng, uid=str(i))
        out.append(p.prompt + render(p, rng, style))
    return out


_STEP = re.compile(r"([a-e])=(?:[a-e0-9]+[-+*][a-e0-9]+)=(\d+)\.")


def parse_values(problem: Problem, solution: str) -> list[int] | None:
    """Step values written in a solution text (start value first), or None when a step is missing."""
    found = {m.group(1): int(m.group(2)) for m in _STEP.finditer(solution)}
    vals = [problem.start]
    for i in range(len(problem.steps)):
        if VARS[i + 1] not in found:
            return None
        vals.append(found[VARS[i + 1]])
    return vals


def consistent_prefix(problem: Problem, values: list[int], prefix: str, ended: bool = False) -> bool:
    """Whether ``prefix`` (``ended``: followed by EOS) starts some rendering of ``values``, in any style."""
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

    return walk(0, prefix) or (not ended and prefix == "")


def oracle_important(problem: Problem, current: str, alternative: str, ended: bool = False) -> bool | None:
    """Known importance of a mismatch: ``alternative`` (the current response up to the swapped-in draft
    token, solution text only; ``ended`` when that token is EOS) is important when no rendering of the
    current response's step values starts with it. None when ``current`` does not parse."""
    vals = parse_values(problem, current)
    if vals is None:
        return None
    return not consistent_prefix(problem, vals, alternative, ended)
