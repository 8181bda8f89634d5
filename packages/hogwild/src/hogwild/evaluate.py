"""Math benchmark harness: problems with reference answers, accuracy against the budget.

Data: a local JSON (a list of records, or ``{"problems": [...]}``) or JSONL file, a name passed to
``datasets.load_dataset`` (for example a LIMO- or AIME-style set), or ``builtin`` (a handful of
arithmetic problems shipped here, to exercise the harness offline). A record's problem is read
from ``problem``/``question``/``prompt`` and its answer from ``answer``/``expected_answer``, or
from the last ``\\boxed{}`` of ``solution``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hogwild.answers import extract_boxed, is_correct
from hogwild.config import GenerateConfig

BUILTIN = [
    {"problem": "What is 17 + 25?", "answer": "42"},
    {"problem": "What is 9 * 8?", "answer": "72"},
    {"problem": "How many positive divisors does 12 have?", "answer": "6"},
    {"problem": "What is the remainder when 100 is divided by 7?", "answer": "2"},
    {"problem": "Solve for x: 3x + 5 = 20.", "answer": "5"},
    {"problem": "What is 2 to the power 10?", "answer": "1024"},
]

PROBLEM_KEYS = ("problem", "question", "prompt", "input")
ANSWER_KEYS = ("answer", "expected_answer", "final_answer", "target")


@dataclass
class Problem:
    problem: str
    answer: str


def _to_problem(rec: dict, i: int, source: str) -> Problem:
    problem = next((rec[k] for k in PROBLEM_KEYS if k in rec), None)
    answer = next((rec[k] for k in ANSWER_KEYS if k in rec and rec[k] is not None), None)
    if answer is None and "solution" in rec:
        answer = extract_boxed(str(rec["solution"]))
    if problem is None or answer is None:
        raise ValueError(
            f"{source}: record {i} needs a problem ({'/'.join(PROBLEM_KEYS)}) and an answer "
            f"({'/'.join(ANSWER_KEYS)}, or a solution with \\boxed{{}}); it has keys {sorted(rec)}"
        )
    return Problem(str(problem), str(answer))


def load_problems(source: str, split: str = "train", limit: int | None = None) -> list[Problem]:
    """Problems from ``builtin``, a JSON/JSONL file, or a ``datasets`` name."""
    if source == "builtin":
        records = BUILTIN
    elif source.endswith((".json", ".jsonl")) or Path(source).is_file():
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"dataset file not found: {source}")
        text = path.read_text()
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            records = data.get("problems", data.get("data")) if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise ValueError(f"{source}: expected a list of records (or {{'problems': [...]}})")
    else:
        try:
            import datasets

            records = list(datasets.load_dataset(source, split=split))
        except Exception as e:
            raise ValueError(
                f"could not load dataset {source!r} (split {split!r}) with datasets.load_dataset: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; offline, pass a local JSON/JSONL file"
            ) from e
    problems = [_to_problem(r, i, source) for i, r in enumerate(records)]
    return problems[:limit] if limit else problems


def evaluate(
    model,
    tokenizer,
    problems: list[Problem],
    config: GenerateConfig,
    budgets=None,
    progress=None,
    *,
    seed: int = 0,
) -> dict:
    """Run every problem once with answers recorded at each budget; accuracy per budget.

    ``budgets`` defaults to the config's ``record_at`` plus its ``budget``; the run goes to the
    largest. ``seed`` seeds the sampling of every problem's run.
    """
    from hogwild.driver import generate

    if budgets is None:
        budgets = (*config.record_at, config.budget)
    budgets = sorted(set(int(b) for b in budgets))
    cfg = config.replace(budget=max(budgets), record_at=tuple(budgets))
    rows = []
    items = progress(problems) if progress else problems
    for p in items:
        res = generate(model, tokenizer, p.problem, config=cfg, seed=seed)
        rows.append(
            {
                "problem": p.problem,
                "gold": p.answer,
                "answers": {str(b): res.records.get(b) for b in budgets},
                "correct": {str(b): is_correct(res.records.get(b), p.answer) for b in budgets},
                "finished_by": res.finished_by,
                "forward_passes": res.forward_passes,
                "seconds": round(res.seconds, 3),
            }
        )
    accuracy = {str(b): sum(r["correct"][str(b)] for r in rows) / max(1, len(rows)) for b in budgets}
    return {"accuracy": accuracy, "problems": rows, "budgets": budgets, "config": cfg.to_dict(), "seed": seed}


MIN_REASONING_PARAMS = 1_000_000_000


def reproduction_status(model_spec: str, num_params: int, dataset: str) -> str:
    """``"measured"`` only for a real run (a model of at least 1B parameters on a real data set);
    zoo or tiny models and the built-in arithmetic set check the harness and are ``"not reproduced"``."""
    if model_spec.startswith("zoo:"):
        return "not reproduced (zoo model: harness check only)"
    if dataset == "builtin":
        return "not reproduced (built-in arithmetic problems: harness check only)"
    if num_params < MIN_REASONING_PARAMS:
        return (
            f"not reproduced ({num_params / 1e6:.1f}M-parameter model: harness check only; "
            "the paper's accuracy needs a reasoning model such as QwQ-32B)"
        )
    return "measured"
