"""``autojudge`` command line: mine, train, generate, eval, pipeline, demo. With no arguments every
command runs on the built-in arithmetic task and the built-in target/draft pair."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autojudge import __version__
from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config

log = logging.getLogger(__name__)
RUN = Path("autojudge-run")


@dataclass
class MineOptions:
    target: str = field(
        default="builtin:target",
        metadata={"help": "target model (folder, hub id, zoo:NAME, builtin:target, builtin:target-large)"},
    )
    draft: str = field(
        default="builtin:draft", metadata={"help": "draft model sharing the target's tokenizer"}
    )
    data: str = field(
        default="builtin", metadata={"help": "builtin, gsm8k, or a JSONL file (question/answer)"}
    )
    num_problems: int = field(default=200, metadata={"help": "problems to mine"})
    checker: str = field(
        default="auto",
        metadata={"help": "auto (consistent on the built-in task, else gsm8k), gsm8k (#### or \\boxed{}), "
                  "consistent (every stated answer agrees), code, or module:function"},
    )  # fmt: skip
    out: Path = field(default=RUN / "mined", metadata={"help": "output folder (rerun to resume)"})
    max_new_tokens: int = 128
    shard: int = field(
        default=0, metadata={"help": "this process's shard (problems with index %% num_shards == shard)"}
    )
    num_shards: int = 1
    follow: str = field(
        default="alternative",
        metadata={"help": "alternative (the paper's search), target (label along the target's own "
                  "response) or both (the union)"},
    )  # fmt: skip


def _models(target: str, draft: str, common: CommonOptions):
    from autojudge.models import load_pair

    return load_pair(target, draft, device=common.torch_device, dtype=common.torch_dtype)


def mine(opts: MineOptions, common: CommonOptions) -> int:
    """Label every draft/target mismatch of the target's greedy answers as important or not."""
    from autojudge.checkers import load_checker
    from autojudge.data import load_items
    from autojudge.miner import label_stats, load_mined
    from autojudge.miner import mine as run

    if opts.num_problems < 1:
        raise UserError(f"--num-problems must be >= 1, got {opts.num_problems}")
    checker = load_checker(opts.checker, opts.data)
    items = load_items(opts.data, opts.num_problems, common.seed, "mine")
    t, d, tok = _models(opts.target, opts.draft, common)
    path = run(
        items,
        t,
        d,
        tok,
        checker,
        opts.out,
        max_new_tokens=opts.max_new_tokens,
        shard=opts.shard,
        num_shards=opts.num_shards,
        follow=opts.follow,
    )
    write_resolved_config(opts.out, opts, common, name=f"resolved_config-{opts.shard}.json")
    stats = label_stats(load_mined(path))
    print(
        f"mined {path}: {stats['mismatches']} mismatches in {stats['problems']} problems, "
        f"{100 * stats['important_share']:.1f}% important"
    )
    if stats["oracle_known"]:
        print(f"agreement with the built-in task's known importance: {100 * stats['oracle_agreement']:.1f}%")
    print(json.dumps(stats))
    return 0


@dataclass
class TrainOptions:
    mined: Path = field(
        default=RUN / "mined",
        metadata={"help": "folder written by `autojudge mine` (mined with defaults when absent)"},
    )
    out: Path = field(
        default=RUN / "judge", metadata={"help": "output folder for judge.safetensors/judge.json"}
    )
    target: str = "builtin:target"
    draft: str = "builtin:draft"
    setup: Literal["DD-DT", "DT"] = field(
        default="DD-DT", metadata={"help": "features: draft+target or target hidden states"}
    )
    val_fraction: float = field(default=0.1, metadata={"help": "validation share of problems"})
    split_seed: int = 52
    train_on_all: bool = field(default=False, metadata={"help": "refit on all problems with the chosen C"})


def train(opts: TrainOptions, common: CommonOptions) -> int:
    """Extract hidden-state features of mined mismatches and fit the judge."""
    from autojudge.judge import extract_features, train_judge
    from autojudge.miner import load_mined
    from autojudge.models import fingerprint
    from papercore.io import save_tensors, write_json

    if not opts.mined.exists():
        if opts.mined != RUN / "mined":
            raise UserError(f"--mined {opts.mined} not found: run `autojudge mine --out {opts.mined}` first")
        mine(MineOptions(target=opts.target, draft=opts.draft, out=opts.mined), common)
    records = load_mined(opts.mined)
    t, d, _ = _models(opts.target, opts.draft, common)
    feats = extract_features(records, t, d)
    judge, report = train_judge(
        feats,
        opts.setup,
        val_fraction=opts.val_fraction,
        seed=opts.split_seed,
        train_on_all=opts.train_on_all,
        fingerprints={"target": fingerprint(t), "draft": fingerprint(d)},
    )
    judge.save(opts.out)
    save_tensors(opts.out / "features.safetensors", feats)
    write_json(opts.out / "train_report.json", report)
    write_resolved_config(opts.out, opts, common)
    print(
        f"judge saved to {opts.out}: setup {opts.setup}, C={report['C']:.3g}, validation ROC-AUC {report['val_auc']:.3f} "
        f"({report['train_mismatches']} train / {report['val_mismatches']} val mismatches)"
    )
    return 0


@dataclass
class GenerateOptions:
    judge: Path | None = field(
        default=None, metadata={"help": "judge folder (default: autojudge-run/judge when present)"}
    )
    target: str = "builtin:target"
    draft: str = "builtin:draft"
    mode: Literal["auto", "lossless", "judge", "topk", "random", "accept_all"] = field(
        default="auto", metadata={"help": "auto: judge when one is found, else lossless"}
    )
    window: int = 16
    threshold_index: int = field(default=13, metadata={"help": "index into the judge's quantile thresholds"})
    top_k: int = 2
    max_new_tokens: int = 128
    stop: list[str] | None = field(default=None, metadata={"help": "stop strings"})


def generate(opts: GenerateOptions, common: CommonOptions, prompt: str | None = None) -> int:
    """Decode one prompt (default: a built-in problem) and print the text and the decoding statistics."""
    from autojudge.data import Item, builtin_items, encode_prompt
    from autojudge.engine import SpecConfig, SpeculativeDecoder
    from autojudge.judge import Judge

    t, d, tok = _models(opts.target, opts.draft, common)
    judge_path = opts.judge or (RUN / "judge" if (RUN / "judge" / "judge.json").is_file() else None)
    judge = Judge.load(judge_path) if judge_path else None
    if judge is not None:
        judge.check_models(t, d)
    mode = opts.mode if opts.mode != "auto" else ("judge" if judge else "lossless")
    item = builtin_items(1, common.seed, "eval")[0]
    if prompt is not None:
        item = Item("cli", prompt, None, item.problem if opts.target.startswith("builtin") else None)
    cfg = SpecConfig(
        opts.window,
        mode,
        threshold=judge.threshold(opts.threshold_index) if judge else 0.5,
        top_k=opts.top_k,
        max_new_tokens=opts.max_new_tokens,
        seed=common.seed,
    )
    res = SpeculativeDecoder(t, d, tok, judge=judge).generate(encode_prompt(tok, item), cfg, stop=opts.stop)
    print(item.prompt + tok.decode(res.tokens, skip_special_tokens=True))
    print(
        f"[{mode}, W={opts.window}] {len(res.tokens)} tokens in {len(res.cycles)} cycles: "
        f"{res.accepted_per_cycle:.2f} accepted tokens per cycle, {res.target_calls_per_token:.3f} target calls per token, "
        f"{res.seconds:.3f} s, stopped by {res.stopped}"
    )
    return 0


def _add_prompt(p):
    p.add_argument("prompt", nargs="?", default=None, help="prompt text (default: a built-in problem)")


@dataclass
class EvalOptions:
    judge: Path = field(
        default=RUN / "judge", metadata={"help": "judge folder (trained with defaults when absent)"}
    )
    target: str = "builtin:target"
    draft: str = "builtin:draft"
    data: str = "builtin"
    num_problems: int = 30
    checker: str = "auto"
    window: int = 16
    max_new_tokens: int = 128
    thresholds: list[int] | None = field(default=None, metadata={"help": "threshold indices (default: all)"})
    random_control: bool = field(
        default=True, metadata={"help": "also run random acceptance at the judge's rates"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "write results.json (+ results.md, pareto.png) here"}
    )


def evaluate(opts: EvalOptions, common: CommonOptions) -> int:
    """Accuracy and speed of target-only, lossless, judge (every threshold), top-K, random and accept-all."""
    from autojudge.checkers import load_checker
    from autojudge.data import load_items
    from autojudge.evaluate import format_table, plot, random_controls, run_methods, standard_methods
    from autojudge.judge import Judge
    from papercore.io import write_json

    if not (opts.judge / "judge.json").is_file():
        if opts.judge != RUN / "judge":
            raise UserError(
                f"--judge {opts.judge}: no judge.json there; run `autojudge train --out {opts.judge}`"
            )
        train(TrainOptions(target=opts.target, draft=opts.draft), common)
    judge = Judge.load(opts.judge)
    t, d, tok = _models(opts.target, opts.draft, common)
    judge.check_models(t, d)
    checker = load_checker(opts.checker, opts.data)
    items = load_items(opts.data, opts.num_problems, common.seed, "eval")
    methods = standard_methods(opts.window, opts.max_new_tokens, judge, opts.thresholds)
    rows = run_methods(items, t, d, tok, checker, methods, judge=judge)
    if opts.random_control:
        base = next(r for r in rows if r["mode"] == "lossless")
        extra = run_methods(
            items, t, d, tok, checker, random_controls(rows, opts.window, opts.max_new_tokens), progress=False
        )
        for r in extra:
            r["apc_vs_lossless"] = r["accepted_per_cycle"] / base["accepted_per_cycle"]
            r["speedup_vs_lossless"] = base["seconds_per_problem"] / max(r["seconds_per_problem"], 1e-12)
        rows += extra
    table = format_table(rows)
    print(table)
    if opts.out:
        write_json(opts.out / "results.json", rows)
        (opts.out / "results.md").write_text(table + "\n")
        if plot(rows, opts.out / "pareto.png"):
            print(f"plot: {opts.out / 'pareto.png'}")
        else:
            print("matplotlib is not installed: skipped the plot (pip install 'autojudge[plot]')")
        write_resolved_config(opts.out, opts, common)
    return 0


@dataclass
class PipelineOptions:
    out: Path = field(default=RUN, metadata={"help": "folder for mined/, judge/, results"})
    target: str = "builtin:target"
    draft: str = "builtin:draft"
    data: str = "builtin"
    checker: str = "auto"
    num_problems: int = field(default=200, metadata={"help": "problems to mine"})
    eval_problems: int = 30
    setup: Literal["DD-DT", "DT"] = "DD-DT"
    window: int = 16
    max_new_tokens: int = 128
    thresholds: list[int] | None = field(default=None, metadata={"help": "threshold indices (default: all)"})


def pipeline(opts: PipelineOptions, common: CommonOptions) -> int:
    """mine -> train -> eval, with a results table and a plot of accuracy against speed."""
    mine(
        MineOptions(
            opts.target,
            opts.draft,
            opts.data,
            opts.num_problems,
            opts.checker,
            opts.out / "mined",
            opts.max_new_tokens,
        ),
        common,
    )
    train(TrainOptions(opts.out / "mined", opts.out / "judge", opts.target, opts.draft, opts.setup), common)
    evaluate(
        EvalOptions(
            opts.out / "judge",
            opts.target,
            opts.draft,
            opts.data,
            opts.eval_problems,
            opts.checker,
            opts.window,
            opts.max_new_tokens,
            opts.thresholds,
            True,
            opts.out,
        ),
        common,
    )
    return 0


def demo(common: CommonOptions) -> int:
    """A small pipeline on the built-in task in a temporary folder."""
    logging.getLogger("papercore").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="autojudge-demo-") as tmp:
        return pipeline(
            PipelineOptions(out=Path(tmp), num_problems=40, eval_problems=10, thresholds=[0, 10, 15, 20, 25]),
            common,
        )


app = CLI(
    "autojudge",
    "AutoJudge: lossy speculative decoding with a judge trained on mined important mismatches.",
    [
        Command("mine", mine, "label draft/target mismatches by the semi-greedy search", MineOptions),
        Command("train", train, "fit the judge on hidden states of mined mismatches", TrainOptions),
        Command(
            "generate",
            generate,
            "speculative decoding of one prompt",
            GenerateOptions,
            add_arguments=_add_prompt,
        ),
        Command("eval", evaluate, "accuracy and speed of every method and threshold", EvalOptions),
        Command("pipeline", pipeline, "mine -> train -> eval with a table and a plot", PipelineOptions),
        Command("demo", demo, "a small pipeline on the built-in task"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return app.main(argv or ["demo"])


if __name__ == "__main__":
    sys.exit(main())
