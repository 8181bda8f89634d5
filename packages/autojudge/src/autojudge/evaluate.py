"""Quality and speed of decoding methods on a problem set: accuracy (against the gold answer and
against the target's greedy answer), accepted tokens per cycle, target calls per token, wall time
per problem and the speed-ups over lossless speculative decoding with the same window."""

from __future__ import annotations

import time
from dataclasses import dataclass

from autojudge.checkers import is_correct, safe_answer
from autojudge.config import EvalConfig, SpecConfig, TaskConfig
from autojudge.data import Item, encode_prompt
from autojudge.engine import SpeculativeDecoder, greedy


@dataclass
class Method:
    label: str
    config: SpecConfig | None  # None: target-only greedy decoding


def run_methods(
    items: list[Item],
    target,
    draft,
    tokenizer,
    checker,
    methods: list[Method],
    judge=None,
    progress=True,
    chat_template: bool = True,
) -> list[dict]:
    """One row per method; the first lossless method is the reference for the speed-ups.

    ``accuracy``: share of answers equal to the gold; ``agreement_with_target``: share equal to the
    target's greedy answer; ``mismatch_accept_rate``: mismatches accepted by the rule over those it
    was asked about and that ended a cycle's run (accepted + refused)."""
    from papercore.runtime import progress as bar

    dec = SpeculativeDecoder(target, draft, tokenizer, judge=judge)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
    prompts = [encode_prompt(tokenizer, it, chat_template) for it in items]
    max_new = max((m.config.max_new_tokens for m in methods if m.config), default=128)
    ref_answers = [
        safe_answer(checker, decode(greedy(target, p, max_new, dec.eos, dec.vocab)), it)
        for p, it in zip(prompts, items)
    ]
    rows = []
    for m in bar(methods, desc="eval") if progress else methods:
        correct = agree = tokens = cycles = emitted = judged = rejected = 0
        seconds = 0.0
        for p, it, ref in zip(prompts, items, ref_answers):
            if m.config is None:
                t0 = time.perf_counter()
                out = greedy(target, p, max_new, dec.eos, dec.vocab)
                seconds += time.perf_counter() - t0
                n_cycles, n_emitted = len(out), len(out)
            else:
                res = dec.generate(p, m.config)
                out, seconds = res.tokens, seconds + res.seconds
                n_cycles, n_emitted = len(res.cycles), sum(c.emitted for c in res.cycles)
                judged += sum(c.judged for c in res.cycles)
                rejected += sum(1 for c in res.cycles if c.accepted < c.proposed)
            ans = safe_answer(checker, decode(out), it)
            correct += is_correct(ans, it)
            agree += ans == ref
            tokens += len(out)
            cycles += n_cycles
            emitted += n_emitted
        n = len(items)
        cfg = m.config
        rows.append(
            {
                "method": m.label,
                "mode": cfg.mode if cfg else "target",
                "window": cfg.window if cfg else 0,
                "threshold": cfg.threshold if cfg and cfg.mode == "judge" else None,
                "accuracy": correct / n,
                "agreement_with_target": agree / n,
                "accepted_per_cycle": emitted / max(1, cycles),
                "target_calls_per_token": cycles / max(1, tokens),
                "mismatch_accept_rate": judged / max(1, judged + rejected),
                "seconds_per_problem": seconds / n,
                "tokens_per_second": tokens / max(seconds, 1e-9),
            }
        )
    base = next((r for r in rows if r["mode"] == "lossless"), None)
    for r in rows:
        if base is not None:
            r["apc_vs_lossless"] = r["accepted_per_cycle"] / base["accepted_per_cycle"]
            r["speedup_vs_lossless"] = base["seconds_per_problem"] / max(r["seconds_per_problem"], 1e-12)
    return rows


def standard_methods(
    window: int, max_new_tokens: int, judge=None, threshold_indices=None, top_ks=(2, 4, 8)
) -> list[Method]:
    """Target-only, lossless, the judge at each threshold, top-K, accept-all (see :func:`methods_for`)."""
    ms = [
        Method("target greedy", None),
        Method(f"lossless W={window}", SpecConfig(window, "lossless", max_new_tokens=max_new_tokens)),
    ]
    if judge is not None:
        idx = range(len(judge.thresholds)) if threshold_indices is None else threshold_indices
        for i in idx:
            th = judge.threshold(i)
            label = f"judge q={judge.quantiles[i]:.2f}"
            ms.append(Method(label, SpecConfig(window, "judge", threshold=th, max_new_tokens=max_new_tokens)))
    for k in top_ks:
        ms.append(Method(f"top-{k}", SpecConfig(window, "topk", top_k=k, max_new_tokens=max_new_tokens)))
    ms.append(Method("accept-all (draft)", SpecConfig(window, "accept_all", max_new_tokens=max_new_tokens)))
    return ms


def methods_for(config: EvalConfig, max_new_tokens: int, judge=None) -> list[Method]:
    """The methods :class:`EvalConfig` asks for (random controls come after, from the judge's rows)."""
    return standard_methods(config.window, max_new_tokens, judge, config.threshold_indices, config.top_ks)


def random_controls(rows: list[dict], window: int, max_new_tokens: int) -> list[Method]:
    """Random acceptance with the mismatch acceptance rate of each judge row."""
    return [
        Method(
            f"random p={r['mismatch_accept_rate']:.2f}",
            SpecConfig(
                window, "random", accept_prob=r["mismatch_accept_rate"], max_new_tokens=max_new_tokens
            ),
        )
        for r in rows
        if r["mode"] == "judge" and 0 < r["mismatch_accept_rate"] < 1
    ]


def run_eval(
    items: list[Item],
    target,
    draft,
    tokenizer,
    checker,
    judge=None,
    config: EvalConfig | None = None,
    task: TaskConfig | None = None,
    progress: bool = True,
) -> list[dict]:
    """Every method of ``config`` (:func:`methods_for`), then, with ``config.random_control``, random
    acceptance at each judge row's acceptance rate; speed-ups against the lossless row."""
    config, task = config or EvalConfig(), task or TaskConfig()
    kw = dict(judge=judge, progress=progress, chat_template=task.chat_template)
    rows = run_methods(
        items, target, draft, tokenizer, checker, methods_for(config, task.max_new_tokens, judge), **kw
    )
    controls = random_controls(rows, config.window, task.max_new_tokens) if config.random_control else []
    if controls:
        base = next(r for r in rows if r["mode"] == "lossless")
        extra = run_methods(items, target, draft, tokenizer, checker, controls, **{**kw, "progress": False})
        for r in extra:
            r["apc_vs_lossless"] = r["accepted_per_cycle"] / base["accepted_per_cycle"]
            r["speedup_vs_lossless"] = base["seconds_per_problem"] / max(r["seconds_per_problem"], 1e-12)
        rows += extra
    return rows


def format_table(rows: list[dict]) -> str:
    head = "| method | accuracy | agree w/ target | accepted/cycle | target calls/token | s/problem | apc vs lossless | speed-up vs lossless |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['accuracy']:.3f} | {r['agreement_with_target']:.3f} | {r['accepted_per_cycle']:.2f} | "
            f"{r['target_calls_per_token']:.3f} | {r['seconds_per_problem']:.4f} | {r.get('apc_vs_lossless', float('nan')):.2f} | "
            f"{r.get('speedup_vs_lossless', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path) -> bool:
    """Accuracy against accepted tokens per cycle; False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, marker in (
        ("judge", "o-"),
        ("topk", "s"),
        ("random", "x"),
        ("lossless", "*"),
        ("accept_all", "^"),
    ):
        pts = sorted((r["accepted_per_cycle"], r["accuracy"]) for r in rows if r["mode"] == mode)
        if pts:
            ax.plot(*zip(*pts), marker, label=mode)
    ax.set_xlabel("accepted tokens per cycle")
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
