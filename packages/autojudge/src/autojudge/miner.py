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

from autojudge.checkers import FAILED, safe_answer
from autojudge.config import FOLLOW, MineConfig, TaskConfig
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
    """:class:`GreedyLM` over a transformers causal LM, with a KV cache reused across calls (``vocab``:
    argmax over the first ``vocab`` logits, the vocabulary shared with the other model)."""

    def __init__(self, model, vocab: int | None = None):
        self.lm = CachedLM(model, vocab)
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
    """Run the semi-greedy search on one prompt; returns the record written by :func:`mine`.

    When the checker fails or finds no answer in the target's own response there is no reference to
    compare alternatives with: the problem is skipped (no mismatches; ``reference_failed`` is set)."""
    if follow not in FOLLOW:
        raise ValueError(f"follow must be one of {', '.join(FOLLOW)}, got {follow!r}")
    t0 = time.perf_counter()
    P = len(prompt_ids)
    y0 = list(prompt_ids) + target.continue_greedy(prompt_ids, max_new_tokens, eos)
    alpha = safe_answer(checker, decode(y0[P:]), item)
    y, mismatches, calls = y0, [], 1
    failed = reference_failed(alpha)
    if failed:
        log.info("problem %s: %s; skipped", item.uid, failed)
    elif follow in ("alternative", "both"):
        y, mismatches, n = _search(
            target, draft, y0, P, decode, checker, item, max_new_tokens, eos, alpha, True
        )
        calls += n
    if not failed and follow in ("target", "both"):
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
        **({"reference_failed": failed} if failed else {}),
    }


def reference_failed(answer) -> str | None:
    """Why a reference answer cannot label mismatches (the checker failed or found nothing), or None."""
    if answer == FAILED:
        return "the checker failed on the target's own response"
    if answer is None:
        return "the checker found no answer in the target's own response"
    return None


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


MANIFEST = "mining.json"


def _checker_name(checker) -> str:
    if hasattr(checker, "__qualname__"):
        return f"{getattr(checker, '__module__', '?')}:{checker.__qualname__}"
    return repr(checker)  # a configured instance such as CodeChecker(timeout=5.0, memory_mb=1024)


def check_manifest(out: str | os.PathLike, fingerprints: dict, settings: dict) -> None:
    """Refuse to add to a mining folder made with other models or settings (one-line ValueError);
    write ``OUT/mining.json`` when the folder has none."""
    from papercore.config import config_diff
    from papercore.io import read_json, write_json

    out = Path(out)
    path = out / MANIFEST
    if path.is_file():
        saved = read_json(path)
        for k in ("target", "draft"):
            before, now = saved.get("fingerprints", {}).get(k), fingerprints.get(k)
            if before != now:
                raise ValueError(
                    f"{out} was mined with another {k} model (fingerprint {before} != {now}): resume with "
                    "the same models or use a new output folder"
                )
        diff = config_diff(saved.get("settings", {}), settings)
        if diff:
            raise ValueError(
                f"{out} was mined with other settings ({diff}, saved != now): pass the same settings to "
                "resume or use a new output folder"
            )
        return
    if any(f.stat().st_size for f in out.glob("mined-*.jsonl")):
        log.warning(
            "%s has mined records but no %s (an older release): the resume is not checked", out, MANIFEST
        )
    write_json(path, {"fingerprints": fingerprints, "settings": settings})


def mine(
    items: list[Item],
    target,
    draft,
    tokenizer,
    checker,
    out: str | os.PathLike,
    config: MineConfig | None = None,
    task: TaskConfig | None = None,
    *,
    num_problems: int | None = None,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    settings: dict | None = None,
) -> Path:
    """Mine the first ``num_problems`` items (all when None) of this shard (``index % num_shards ==
    shard``) into ``OUT/mined-*.jsonl``, one JSON line per problem, flushed as it finishes.

    Rerunning resumes: finished problems are skipped, after checking that ``OUT/mining.json`` records
    the same models (fingerprints), ``config`` (except how much to mine), ``task`` and ``settings``
    (the CLI's data and seed); a mismatch is a one-line ValueError. With ``config.min_per_class``
    (one shard), the next items are mined too until both labels have that many mismatches, up to
    ``config.max_problems`` problems in all: a ValueError names the counts when the cap (or the
    items) run out first. Problems whose target response the checker cannot read are skipped and
    counted; more than ``config.max_failed_share`` of them is a ValueError. ``checker`` None: the
    one ``task.checker`` names.
    """
    from autojudge.checkers import load_checker
    from autojudge.engine import _eos_ids
    from autojudge.models import check_same_vocab, fingerprint
    from papercore.runtime import progress as bar

    config, task = config or MineConfig(), task or TaskConfig()
    if not items:
        raise ValueError("the mining set is empty: pass some problems (e.g. --num-problems 50)")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards), got {shard} of {num_shards}")
    if checker is None:
        checker = load_checker(task.checker, "builtin" if items[0].problem is not None else None)
    vocab = check_same_vocab(target, draft, tokenizer)
    n0 = len(items) if num_problems is None else min(num_problems, len(items))
    mine_settings = {
        **{k: v for k, v in config.to_dict().items() if k not in MineConfig.RESUMABLE},
        **task.to_dict(),
        "checker": _checker_name(checker),
        **(settings or {}),
    }
    check_manifest(out, {"target": fingerprint(target), "draft": fingerprint(draft)}, mine_settings)
    path = shard_path(out, shard, num_shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_done(path)
    mine_set = [it for i, it in enumerate(items[:n0]) if i % num_shards == shard]
    todo = [it for it in mine_set if it.uid not in done]
    if done:
        log.info("resuming %s: %d problems done, %d to go", path, len(done), len(todo))
    eos = _eos_ids(target, tokenizer, None)
    t_lm, d_lm = HFGreedyLM(target, vocab), HFGreedyLM(draft, vocab)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)

    def counts() -> tuple[int, int, int, int]:
        recs = [done[it.uid] for it in mine_set if it.uid in done]
        labels = [m["important"] for r in recs for m in r["mismatches"]]
        return (
            len(recs),
            sum(bool(r.get("reference_failed")) for r in recs),
            sum(labels),
            len(labels) - sum(labels),
        )

    def check_failures() -> None:
        n, failed, _, _ = counts()
        if n and failed / n > config.max_failed_share:
            raise ValueError(
                f"the checker found no answer in the target's own response on {failed} of {n} problems "
                f"({failed / n:.0%}, more than max_failed_share {config.max_failed_share:.0%}); those "
                "problems are skipped: check the checker and max_new_tokens (a cut response has no answer)"
            )

    with open(path, "a") as f:

        def run(it: Item) -> None:
            ids = encode_prompt(tokenizer, it, chat_template=task.chat_template)
            rec = mine_one(t_lm, d_lm, ids, decode, checker, it, task.max_new_tokens, eos, config.follow)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            done[it.uid] = rec

        for it in bar(todo, desc=f"mine {shard}/{num_shards}") if progress else todo:
            run(it)
        check_failures()
        if config.min_per_class and num_shards == 1:
            cap, nxt = min(config.max_problems, len(items)), n0
            while True:
                n, _, imp, unimp = counts()
                if min(imp, unimp) >= config.min_per_class:
                    break
                if nxt >= cap:
                    limit = (
                        f"max_problems {config.max_problems}"
                        if cap == config.max_problems
                        else f"all {len(items)} problems of the data"
                    )
                    raise ValueError(
                        f"after {n} problems ({limit}) the mined labels have {imp} important and {unimp} "
                        f"unimportant mismatches, fewer than min_per_class {config.min_per_class} of each: "
                        "mine more problems (max_problems), lower min_per_class, or use another model pair"
                    )
                if nxt == n0:
                    log.info("%d important and %d unimportant mismatches: mining more problems", imp, unimp)
                it = items[nxt]
                nxt += 1
                mine_set.append(it)
                if it.uid not in done:
                    run(it)
                    check_failures()
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
        "reference_failed": sum(bool(r.get("reference_failed")) for r in records),
        "mismatches": len(ms),
        "important": sum(m["important"] for m in ms),
        "important_share": sum(m["important"] for m in ms) / max(1, len(ms)),
        "oracle_known": len(known),
        "oracle_agreement": agree / max(1, len(known)),
        "important_precision": sum(m["oracle"] for m in imp) / max(1, len(imp)),
        "target_generations": sum(r["target_generations"] for r in records),
    }
