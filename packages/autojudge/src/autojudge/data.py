"""Problems to mine, train and evaluate on: the built-in arithmetic task, a JSONL file, or GSM8K."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autojudge import task


@dataclass
class Item:
    uid: str
    prompt: str
    gold: Any = None  # the reference answer (GSM8K number) or tests (code)
    problem: task.Problem | None = None  # built-in task only: enables the importance oracle


def builtin_items(n: int, seed: int = 0, split: str = "mine", variant: str = "builtin") -> list[Item]:
    """``n`` problems of the built-in task (``variant``: ``builtin`` or ``builtin-small``) as items."""
    return [Item(p.uid, p.prompt, str(p.answer), p) for p in task.problems(n, seed, split, variant)]


def load_items(spec: str, n: int | None = None, seed: int = 0, split: str = "mine") -> list[Item]:
    """``builtin`` (``n`` seeded problems of ``split``; ``builtin-small``: the demo's one-step version),
    a JSONL file with ``question``/``prompt`` and ``answer``/``gold`` fields (a GSM8K ``answer`` keeps
    its number after ``####``), or ``gsm8k`` (Hugging Face ``datasets``, needs the hub or its cache)."""
    from autojudge.checkers import gsm8k_answer

    if spec in task.VARIANTS:
        return builtin_items(n or 200, seed, split, spec)
    if spec == "gsm8k":
        try:
            import datasets

            rows = datasets.load_dataset("gsm8k", "main", split="train" if split == "mine" else "test")
        except Exception as e:
            raise FileNotFoundError(
                f"cannot load gsm8k ({type(e).__name__}); pass a local JSONL file with question/answer fields"
            ) from e
        rows = list(rows)
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(
                f"data file not found: {spec} (use builtin, builtin-small, gsm8k or a JSONL file)"
            )
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items = []
    for i, r in enumerate(rows[: n or None]):
        prompt = r.get("prompt") or r.get("question")
        if prompt is None:
            raise ValueError(f"{spec} row {i}: needs a 'prompt' or 'question' field")
        gold = r.get("gold", r.get("answer"))
        if isinstance(gold, str) and "####" in gold:
            gold = gsm8k_answer(gold)
        items.append(Item(str(r.get("id", i)), prompt, gold))
    if not items:
        raise ValueError(f"no problems in {spec}")
    return items


def encode_prompt(tokenizer, item: Item, chat_template: bool = True) -> list[int]:
    """Prompt token ids. The built-in models saw documents separated by EOS, so their prompts start
    with it. Other models: the prompt as the user's turn of the tokenizer's chat template when it has
    one and ``chat_template`` is on (the template's text already holds its special tokens), else the
    tokenizer's usual special tokens (a BOS) and the plain prompt."""
    if item.problem is not None:
        return [tokenizer.eos_token_id] + tokenizer(item.prompt, add_special_tokens=False).input_ids
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": item.prompt}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False).input_ids
    return tokenizer(item.prompt).input_ids
