"""``autojudge`` command line: mine, train, generate, eval, pipeline, demo. With no arguments every
command runs on the built-in arithmetic task and the built-in target/draft pair.

Each command takes the library's configs whole (:mod:`autojudge.config`: every field is a flag and a
``--config FILE`` key) and keeps its run options (models, data, folders) apart.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autojudge import __version__
from autojudge.config import EvalConfig, JudgeConfig, MineConfig, SpecConfig, TaskConfig
from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config

log = logging.getLogger(__name__)
RUN = Path("autojudge-run")
TARGET_HELP = (
    "target model (folder, hub id, zoo:NAME, builtin:target, builtin:target-large, builtin:demo-target)"
)
DRAFT_HELP = "draft model sharing the target's tokenizer (builtin:draft, builtin:demo-draft, ...)"
DATA_HELP = (
    "builtin (the arithmetic task), builtin-small (its one-step version, the demo's), gsm8k, or a JSONL file"
)


def _target(default: str = "builtin:target"):
    return field(default=default, metadata={"help": TARGET_HELP})


def _draft(default: str = "builtin:draft"):
    return field(default=default, metadata={"help": DRAFT_HELP})


def _models(target: str, draft: str, common: CommonOptions):
    from autojudge.models import load_pair

    return load_pair(target, draft, device=common.torch_device, dtype=common.torch_dtype)


# ------------------------------------------------------------------------------------------ mine
@dataclass
class MineOptions:
    target: str = _target()
    draft: str = _draft()
    data: str = field(default="builtin", metadata={"help": DATA_HELP})
    num_problems: int = field(default=200, metadata={"help": "problems to mine (more with --min-per-class)"})
    out: Path = field(default=RUN / "mined", metadata={"help": "output folder (rerun to resume)"})
    shard: int = field(
        default=0, metadata={"help": "this process's shard (problems with index %% num_shards == shard)"}
    )
    num_shards: int = field(default=1, metadata={"help": "processes mining in parallel"})


def _mine(cfg: MineConfig, task: TaskConfig, opts: MineOptions, common: CommonOptions) -> dict:
    from autojudge.checkers import load_checker
    from autojudge.data import load_items
    from autojudge.miner import label_stats, load_mined, mine

    if opts.num_problems < 1:
        raise UserError(f"--num-problems must be >= 1, got {opts.num_problems}")
    checker = load_checker(task.checker, opts.data)
    n = max(opts.num_problems, cfg.max_problems if cfg.min_per_class else 0)
    items = load_items(opts.data, n if opts.data.startswith("builtin") else None, common.seed, "mine")
    t, d, tok = _models(opts.target, opts.draft, common)
    path = mine(
        items,
        t,
        d,
        tok,
        checker,
        opts.out,
        cfg,
        task,
        num_problems=opts.num_problems,
        shard=opts.shard,
        num_shards=opts.num_shards,
        settings={"data": opts.data, "seed": common.seed},
    )
    name = "resolved_config.json" if opts.num_shards == 1 else f"resolved_config-{opts.shard}.json"
    write_resolved_config(opts.out, cfg, task, opts, common=common, name=name)
    stats = label_stats(load_mined(path))
    print(
        f"mined {path}: {stats['mismatches']} mismatches in {stats['problems']} problems, "
        f"{100 * stats['important_share']:.1f}% important"
        + (
            f", {stats['reference_failed']} problems skipped (no reference answer)"
            if stats["reference_failed"]
            else ""
        )
    )
    if stats["oracle_known"]:
        print(f"agreement with the built-in task's known importance: {100 * stats['oracle_agreement']:.1f}%")
    return stats


def mine_cmd(cfg: MineConfig, task: TaskConfig, opts: MineOptions, common: CommonOptions) -> int:
    """Label every draft/target mismatch of the target's greedy answers as important or not."""
    print(json.dumps(_mine(cfg, task, opts, common)))
    return 0


# ----------------------------------------------------------------------------------------- train
@dataclass
class TrainOptions:
    mined: Path = field(
        default=RUN / "mined",
        metadata={"help": "folder written by `autojudge mine` (mined with defaults when absent)"},
    )
    out: Path = field(
        default=RUN / "judge", metadata={"help": "output folder for judge.safetensors/judge.json"}
    )
    target: str = _target()
    draft: str = _draft()
    plot: bool = field(
        default=True,
        metadata={"help": "write train.png (validation ROC-AUC for each C) next to train_report.json"},
    )


def train(cfg: JudgeConfig, opts: TrainOptions, common: CommonOptions) -> int:
    """Extract hidden-state features of mined mismatches and fit the judge."""
    from autojudge.judge import extract_features, train_judge
    from autojudge.miner import load_mined
    from autojudge.models import fingerprint
    from papercore.io import save_tensors, write_json

    if not opts.mined.exists():
        if opts.mined != RUN / "mined":
            raise UserError(f"--mined {opts.mined} not found: run `autojudge mine --out {opts.mined}` first")
        _mine(MineConfig(), TaskConfig(), MineOptions(opts.target, opts.draft, out=opts.mined), common)
    records = load_mined(opts.mined)
    t, d, _ = _models(opts.target, opts.draft, common)
    feats = extract_features(records, t, d)
    judge, report = train_judge(feats, cfg, fingerprints={"target": fingerprint(t), "draft": fingerprint(d)})
    judge.save(opts.out)
    save_tensors(opts.out / "features.safetensors", feats)
    write_json(opts.out / "train_report.json", report)
    if opts.plot:
        try:
            plot_train(report, opts.out / "train.png")
        except ImportError:
            print(NO_MATPLOTLIB)
    write_resolved_config(opts.out, cfg, opts, common=common)
    print(
        f"judge saved to {opts.out}: setup {cfg.setup}, C={report['C']:.3g}, validation ROC-AUC {report['val_auc']:.3f} "
        f"({report['train_mismatches']} train / {report['val_mismatches']} val mismatches)"
    )
    return 0


NO_MATPLOTLIB = "matplotlib is not installed: skipped the plot (pip install 'autojudge[plot]')"


def plot_train(report: dict, path: Path) -> Path:
    """The judge's validation ROC-AUC for each regularisation strength C of the grid."""
    import math

    from papercore.plot import curves

    records = [
        {"log10_C": math.log10(float(c)), "split": "val", "val_auc": a} for c, a in report["auc_by_C"].items()
    ]
    title = f"judge ({report['setup']}): C = {report['C']:.3g} kept, ROC-AUC {report['val_auc']:.3f}"
    return curves(sorted(records, key=lambda r: r["log10_C"]), path, ["val_auc"], x="log10_C", title=title)


# -------------------------------------------------------------------------------------- generate
@dataclass
class GenerateOptions:
    judge: Path | None = field(
        default=None, metadata={"help": "judge folder for --mode judge (default: autojudge-run/judge)"}
    )
    target: str = _target()
    draft: str = _draft()
    threshold_index: int | None = field(
        default=None, metadata={"help": "judge mode: use the judge's i-th threshold instead of --threshold"}
    )
    stop: list[str] | None = field(default=None, metadata={"help": "stop strings"})
    chat_template: bool = field(
        default=True, metadata={"help": "wrap the prompt in the tokenizer's chat template when it has one"}
    )


def generate(cfg: SpecConfig, opts: GenerateOptions, common: CommonOptions, prompt: str | None = None) -> int:
    """Decode one prompt (default: a built-in problem) and print the text and the decoding statistics."""
    from autojudge.data import Item, builtin_items, encode_prompt
    from autojudge.engine import SpeculativeDecoder
    from autojudge.judge import Judge

    cfg = cfg.replace(seed=common.seed)
    judge = None
    if cfg.mode == "judge":
        path = opts.judge or RUN / "judge"
        if not (path / "judge.json").is_file():
            raise UserError(f"--mode judge needs a judge: no judge.json in {path} (run `autojudge train`)")
        judge = Judge.load(path)
    elif opts.threshold_index is not None:
        raise UserError("--threshold-index applies to --mode judge only")
    t, d, tok = _models(opts.target, opts.draft, common)
    if judge is not None:
        judge.check_models(t, d)
        if opts.threshold_index is not None:
            cfg = cfg.replace(threshold=judge.threshold(opts.threshold_index))
    item = builtin_items(1, common.seed, "eval")[0]
    if prompt is not None:
        item = Item("cli", prompt, None, item.problem if opts.target.startswith("builtin") else None)
    res = SpeculativeDecoder(t, d, tok, judge=judge).generate(
        encode_prompt(tok, item, opts.chat_template), cfg, stop=opts.stop
    )
    print(item.prompt + tok.decode(res.tokens, skip_special_tokens=True))
    print(
        f"[{cfg.mode}, W={cfg.window}] {len(res.tokens)} tokens in {len(res.cycles)} cycles: "
        f"{res.accepted_per_cycle:.2f} accepted tokens per cycle, {res.target_calls_per_token:.3f} target calls per token, "
        f"{res.seconds:.3f} s, stopped by {res.stopped}"
    )
    return 0


def _add_prompt(p):
    p.add_argument("prompt", nargs="?", default=None, help="prompt text (default: a built-in problem)")


# ------------------------------------------------------------------------------------------ eval
@dataclass
class EvalOptions:
    judge: Path = field(
        default=RUN / "judge", metadata={"help": "judge folder (trained with defaults when absent)"}
    )
    target: str = _target()
    draft: str = _draft()
    data: str = field(default="builtin", metadata={"help": DATA_HELP})
    num_problems: int = field(default=30, metadata={"help": "evaluation problems"})
    out: Path | None = field(
        default=None, metadata={"help": "write results.json (+ results.md, pareto.png) here"}
    )
    plot: bool = field(
        default=True,
        metadata={"help": "write pareto.png (accuracy against accepted tokens per cycle) with --out"},
    )


def evaluate(cfg: EvalConfig, task: TaskConfig, opts: EvalOptions, common: CommonOptions) -> int:
    """Accuracy and speed of target-only, lossless, judge (every threshold), top-K, random and accept-all."""
    from autojudge.checkers import load_checker
    from autojudge.data import load_items
    from autojudge.evaluate import format_table, plot, run_eval
    from autojudge.judge import Judge
    from papercore.io import write_json

    if not (opts.judge / "judge.json").is_file():
        if opts.judge != RUN / "judge":
            raise UserError(
                f"--judge {opts.judge}: no judge.json there; run `autojudge train --out {opts.judge}`"
            )
        train(JudgeConfig(), TrainOptions(target=opts.target, draft=opts.draft), common)
    judge = Judge.load(opts.judge)
    t, d, tok = _models(opts.target, opts.draft, common)
    judge.check_models(t, d)
    checker = load_checker(task.checker, opts.data)
    items = load_items(opts.data, opts.num_problems, common.seed, "eval")
    rows = run_eval(items, t, d, tok, checker, judge, cfg, task)
    table = format_table(rows)
    print(table)
    if opts.out:
        write_json(opts.out / "results.json", rows)
        (opts.out / "results.md").write_text(table + "\n")
        if opts.plot:
            if plot(rows, opts.out / "pareto.png"):
                print(f"plot: {opts.out / 'pareto.png'}")
            else:
                print(NO_MATPLOTLIB)
        write_resolved_config(opts.out, cfg, task, opts, common=common)
    return 0


# -------------------------------------------------------------------------------------- pipeline
@dataclass
class PipelineOptions:
    out: Path = field(default=RUN, metadata={"help": "folder for mined/, judge/, results"})
    target: str = _target()
    draft: str = _draft()
    data: str = field(default="builtin", metadata={"help": DATA_HELP})
    num_problems: int = field(default=200, metadata={"help": "problems to mine (more with --min-per-class)"})
    eval_problems: int = field(default=30, metadata={"help": "evaluation problems"})
    plot: bool = field(
        default=True, metadata={"help": "write judge/train.png and pareto.png next to their JSON results"}
    )


def pipeline(
    mine_cfg: MineConfig,
    judge_cfg: JudgeConfig,
    eval_cfg: EvalConfig,
    task: TaskConfig,
    opts: PipelineOptions,
    common: CommonOptions,
) -> int:
    """mine -> train -> eval, with a results table and a plot of accuracy against speed."""
    t0, c0 = time.perf_counter(), time.process_time()
    clock = lambda: f"[{time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s]"
    _models(opts.target, opts.draft, common)  # builds (trains) the built-in pair on first use
    print(f"{clock()} models ready: {opts.target}, {opts.draft}", flush=True)
    mine_opts = MineOptions(opts.target, opts.draft, opts.data, opts.num_problems, opts.out / "mined")
    _mine(mine_cfg, task, mine_opts, common)
    print(f"{clock()} mined", flush=True)
    train_opts = TrainOptions(opts.out / "mined", opts.out / "judge", opts.target, opts.draft, plot=opts.plot)
    train(judge_cfg, train_opts, common)
    print(f"{clock()} judge trained", flush=True)
    eval_opts = EvalOptions(
        opts.out / "judge", opts.target, opts.draft, opts.data, opts.eval_problems, opts.out, plot=opts.plot
    )
    evaluate(eval_cfg, task, eval_opts, common)
    write_resolved_config(opts.out, mine_cfg, judge_cfg, eval_cfg, task, opts, common=common)
    print(f"{clock()} evaluated", flush=True)
    return 0


# ------------------------------------------------------------------------------------------ demo
DEMO_TARGET, DEMO_DRAFT = "builtin:demo-target", "builtin:demo-draft"


def demo_configs() -> tuple[MineConfig, JudgeConfig, EvalConfig, TaskConfig, PipelineOptions]:
    """The demo's settings: the small built-in pair on the one-step task; 40 problems mined, and more
    until both labels have 20 mismatches; a quarter of them validate the judge; 10 evaluated with
    lossless decoding, the judge at the 0, 0.12, 0.2, 0.32 and 0.4 quantiles of validation
    P(important), random acceptance at the judge's rates and the draft alone (W = 8)."""
    return (
        MineConfig(min_per_class=20, max_problems=300),
        JudgeConfig(val_fraction=0.25, c_grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0)),
        EvalConfig(window=8, threshold_indices=[0, 3, 5, 8, 10], top_ks=()),
        TaskConfig(max_new_tokens=64),
        PipelineOptions(
            target=DEMO_TARGET, draft=DEMO_DRAFT, data="builtin-small", num_problems=40, eval_problems=10
        ),
    )


def demo(common: CommonOptions) -> int:
    """A small pipeline on the built-in task in a temporary folder (the small built-in pair)."""
    import dataclasses

    import torch

    torch.set_num_threads(
        1
    )  # tiny models: a second thread only adds synchronisation (and much more when busy)
    logging.getLogger("papercore").setLevel(logging.WARNING)
    mine_cfg, judge_cfg, eval_cfg, task, opts = demo_configs()
    with tempfile.TemporaryDirectory(prefix="autojudge-demo-") as tmp:
        opts = dataclasses.replace(opts, out=Path(tmp))
        return pipeline(mine_cfg, judge_cfg, eval_cfg, task, opts, common)


app = CLI(
    "autojudge",
    "AutoJudge: lossy speculative decoding with a judge trained on mined important mismatches.",
    [
        Command(
            "mine",
            mine_cmd,
            "label draft/target mismatches by the semi-greedy search",
            config=(MineConfig, TaskConfig),
            options=MineOptions,
        ),
        Command(
            "train",
            train,
            "fit the judge on hidden states of mined mismatches",
            config=JudgeConfig,
            options=TrainOptions,
        ),
        Command(
            "generate",
            generate,
            "speculative decoding of one prompt",
            config=SpecConfig,
            options=GenerateOptions,
            add_arguments=_add_prompt,
        ),
        Command(
            "eval",
            evaluate,
            "accuracy and speed of every method and threshold",
            config=(EvalConfig, TaskConfig),
            options=EvalOptions,
        ),
        Command(
            "pipeline",
            pipeline,
            "mine -> train -> eval with a table and a plot",
            config=(MineConfig, JudgeConfig, EvalConfig, TaskConfig),
            options=PipelineOptions,
        ),
        Command("demo", demo, "a small pipeline on the built-in task (the small built-in pair)"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return app.main(argv or ["demo"])


if __name__ == "__main__":
    sys.exit(main())
