"""Mining important mismatches without annotation (the semi-greedy search).

For one problem: the target's greedy response ``y`` gives the reference answer ``α``. Then,
repeatedly, take the earliest position ``t >= left`` where the draft's greedy token (given
``y[:t]``) differs from ``y[t]``, swap the draft token in and let the target continue greedily
(nothing to continue when the draft token is EOS). If the checker's answer of that alternative
equals ``α`` the mismatch is **unimportant** and the alternative becomes the current response;
otherwise it is **important** and ``y`` is kept. ``left = t + 1``; stop when no mismatch is left
or after a swapped-in EOS. One target generation per examined mismatch.

``follow="target"`` labels the same way but never moves to the alternative: every mismatch is
examined along the target's own greedy response, the path lossless decoding (and a strict judge)
walks. ``follow="both"`` runs both searches and keeps the union (mismatches whose context is the
same in both are kept once); each labelled mismatch records its ``path``. The paper's search is
``"alternative"``; once it accepts a habitual draft wording it never again sees the target's
wording around later mismatches, and a judge trained on those contexts alone misjudges them at
decoding time (measured on the built-in task: see ``docs/benchmarks/autojudge.md``).

The models are reached through two operations (:class:`GreedyLM`), so lookup-table models can
stand in for transformers models in tests.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from autojudge.checkers import safe_answer
from autojudge.data import Item, encode_prompt
from autojudge.engine import CachedLM

log = logging.getLogger(__name__)


class GreedyLM(Protocol):
    def predictions(self, seq: list[int]) -> list[int]:
        """``p`` with ``p[i]`` = greedy next token after ``seq[:i]``, for ``i`` in 1..len(seq)
        (``p[0]`` unused)."""

    def continue_greedy(self, seq: list[int], max_new: int, eos: set[int]) -> list[int]:
        """Greedy continuation of ``seq`` (at most ``max_new`` tokens, stopping after an EOS)."""


class HFGreedyLM:
    """:class:`GreedyLM` over a transformers causal LM, with a KV cache reused across calls."""

    def __init__(self, model):
        self.lm = CachedLM(model)
        self._pred: list[int] = [-1]

    def predictions(self, seq):
        logits, _, first = self.lm.sync(list(seq))
        self._pred = self._pred[: first + 1] + logits.argmax(-1).tolist()
        return self._pred[: len(seq) + 1]

    def continue_greedy(self, seq, max_new, eos):
        out: list[int] = []
        if max_new <= 0:
            return out
        logits, _, _ = self.lm.sync(list(seq))
        while True:
            tok = int(logits[-1].argmax())
            out.append(tok)
            if tok in eos or len(out) >= max_new:
                return out
            logits, _ = self.lm.feed([tok])


def mine_one(
    target: GreedyLM,
    draft: GreedyLM,
    prompt_ids: list[int],
    decode,
    checker,
    item: Item,
    max_new_tokens: int,
    eos: set[int],
    follow: str = "alternative",
) -> dict:
    """Run the semi-greedy search on one prompt; returns the record written by :func:`mine`."""
    if follow not in FOLLOW:
        raise ValueError(f"follow must be one of {', '.join(FOLLOW)}, got {follow!r}")
    t0 = time.perf_counter()
    P = len(prompt_ids)
    y0 = list(prompt_ids) + target.continue_greedy(prompt_ids, max_new_tokens, eos)
    alpha = safe_answer(checker, decode(y0[P:]), item)
    y, mismatches, calls = y0, [], 1
    if follow in ("alternative", "both"):
        y, mismatches, n = _search(
            target, draft, y0, P, decode, checker, item, max_new_tokens, eos, alpha, True
        )
        calls += n
    if follow in ("target", "both"):
        _, more, n = _search(target, draft, y0, P, decode, checker, item, max_new_tokens, eos, alpha, False)
        calls += n
        seen = {m["pos"] for m in mismatches if y[: m["pos"]] == y0[: m["pos"]]}  # same context twice
        mismatches += [dict(m, path="target") for m in more if m["pos"] not in seen]
    return {
        "uid": item.uid,
        "prompt_ids": list(prompt_ids),
        "response_ids": y[P:],
        "target_response_ids": y0[P:],
        "reference_answer": alpha if alpha is None or isinstance(alpha, (bool, int, float)) else str(alpha),
        "mismatches": mismatches,
        "target_generations": calls,
        "seconds": round(time.perf_counter() - t0, 4),
    }


FOLLOW = ("alternative", "target", "both")


def _search(target, draft, y, P, decode, checker, item, max_new_tokens, eos, alpha, move: bool):
    """One semi-greedy pass from response ``y``; ``move``: continue on unimportant alternatives."""
    from autojudge import task

    calls, left, mismatches = 0, P, []
    while True:
        pred = draft.predictions(y)
        t = next((i for i in range(max(left, 1), len(y)) if y[i] != pred[i]), None)
        if t is None:
            break
        d = pred[t]
        alt = y[:t] + [d]
        ended = d in eos
        if not ended:
            alt += target.continue_greedy(alt, max_new_tokens - (t + 1 - P), eos)
            calls += 1
        answer = safe_answer(checker, decode(alt[P:]), item)
        rec = {"pos": t, "important": answer != alpha, "target_tok": y[t], "draft_tok": d}
        if item.problem is not None:
            rec["oracle"] = task.oracle_important(item.problem, decode(y[P:]), decode(alt[P : t + 1]), ended)
        mismatches.append(rec)
        if move and not rec["important"]:
            y = alt
        left = t + 1
        if ended and move:  # the paper's search stops after a swapped-in EOS
            break
    return y, mismatches, calls


def shard_path(out: str | os.PathLike, shard: int, num_shards: int) -> Path:
    return Path(out) / f"mined-{shard:03d}-of-{num_shards:03d}.jsonl"


def _read_done(path: Path) -> dict[str, dict]:
    """Complete records of a shard file; a torn last line (a crash mid-write) is dropped."""
    done, good = {}, []
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: dropping a torn line (an interrupted write)", path)
            continue
        done[rec["uid"]] = rec
        good.append(line)
    path.write_text("".join(g + "\n" for g in good))
    return done


def mine(
    items: list[Item],
    target,
    draft,
    tokenizer,
    checker,
    out: str | os.PathLike,
    *,
    max_new_tokens: int = 128,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    follow: str = "alternative",
) -> Path:
    """Mine every item of this shard (``index % num_shards == shard``) into ``OUT/mined-*.jsonl``,
    one JSON line per problem, flushed as it finishes. Rerunning skips finished problems (resume)."""
    from autojudge.engine import _eos_ids
    from autojudge.models import check_same_vocab
    from papercore.runtime import progress as bar

    if not items:
        raise ValueError("the mining set is empty: pass some problems (e.g. --num-problems 50)")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards), got {shard} of {num_shards}")
    check_same_vocab(target, draft)
    path = shard_path(out, shard, num_shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_done(path)
    todo = [it for i, it in enumerate(items) if i % num_shards == shard and it.uid not in done]
    if done:
        log.info("resuming %s: %d problems done, %d to go", path, len(done), len(todo))
    eos = _eos_ids(target, tokenizer, None)
    t_lm, d_lm = HFGreedyLM(target), HFGreedyLM(draft)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
    with open(path, "a") as f:
        for it in bar(todo, desc=f"mine {shard}/{num_shards}") if progress else todo:
            rec = mine_one(
                t_lm, d_lm, encode_prompt(tokenizer, it), decode, checker, it, max_new_tokens, eos, follow
            )
            f.write(json.dumps(rec) + "\n")
            f.flush()
    return path


def load_mined(out: str | os.PathLike) -> list[dict]:
    """All records of a mining folder (every shard), or one shard file."""
    out = Path(out)
    files = [out] if out.is_file() else sorted(out.glob("mined-*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no mined-*.jsonl files in {out}: run `autojudge mine --out {out}` first")
    recs = {}
    for f in files:
        recs.update(_read_done(f))
    return list(recs.values())


def label_stats(records: list[dict]) -> dict:
    """Counts of labels and their agreement with the built-in task's oracle (where known)."""
    ms = [m for r in records for m in r["mismatches"]]
    known = [m for m in ms if m.get("oracle") is not None]
    agree = sum(m["important"] == m["oracle"] for m in known)
    imp = [m for m in known if m["important"]]
    return {
        "problems": len(records),
        "mismatches": len(ms),
        "important": sum(m["important"] for m in ms),
        "important_share": sum(m["important"] for m in ms) / max(1, len(ms)),
        "oracle_known": len(known),
        "oracle_agreement": agree / max(1, len(known)),
        "important_precision": sum(m["oracle"] for m in imp) / max(1, len(imp)),
        "target_generations": sum(r["target_generations"] for r in records),
    }
