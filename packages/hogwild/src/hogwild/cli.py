"""``hogwild`` command line: ``solve`` (live side-by-side workers), ``eval`` (accuracy against the
budget), ``bench`` (attention and decode-step timing) and ``demo``."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hogwild import __version__
from hogwild.config import GenerateConfig
from papercore.cli import CLI, Command, CommonOptions, Preset, UserError, write_resolved_config

log = logging.getLogger(__name__)

DEFAULT_PROBLEM = "What is the sum of all positive divisors of 12?"
DEFAULT_MODEL = "zoo:tiny"
ZOO_NOTE = (
    "note: zoo models are tiny and were trained on Python source code, so this shows the mechanics only "
    "(shared blocks, steps, history moves, budget, finisher); collaboration needs a reasoning-capable model "
    "(e.g. --model Qwen/QwQ-32B or a local folder of one)"
)

# Named sets of GenerateConfig values (--preset NAME): defaults <- preset <- --config FILE <- flags.
PRESETS = {
    "demo": {"budget": 64, "few_shot": False, "temperature": 0.8, "check_every": 32},
}


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def _preset_option(default: str | None = None) -> Preset:
    return Preset(
        "preset",
        _preset,
        "named GenerateConfig values: demo (64 sampled passes, no worked examples: a quick CPU run)",
        default,
    )


@dataclass
class ModelOptions:
    """Run options: which model runs the workers (the method's options are GenerateConfig)."""

    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "zoo:NAME, a local model folder, or a hub name"}
    )


@dataclass
class SolveOptions(ModelOptions):
    plain: bool = field(default=False, metadata={"help": "plain text output even on a terminal"})


@dataclass
class EvalOptions(ModelOptions):
    dataset: str = field(default="builtin", metadata={"help": "JSON/JSONL file, a datasets name, or builtin"})
    split: str = field(default="train", metadata={"help": "split of a datasets name"})
    limit: int | None = field(default=None, metadata={"help": "first N problems"})
    out: Path | None = field(
        default=None, metadata={"help": "write results.json, results.png and resolved_config.json here"}
    )
    plot: bool = field(
        default=True,
        metadata={"help": "write results.png (accuracy against the budget) next to results.json"},
    )


def load_model(spec: str, common: CommonOptions):
    """``(model, tokenizer)``: zoo recipes and local folders through papercore, hub names through transformers."""
    from papercore.llm import zoo

    device, dtype = common.torch_device, common.torch_dtype
    if spec.startswith("zoo:") or Path(spec).exists():
        model, tok, _ = zoo.load_model(spec, device=device, dtype=dtype)
        return model, tok
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype).to(device).eval()
    except OSError as e:
        raise UserError(
            f"cannot load model {spec!r} ({str(e).splitlines()[0]}); offline, pass a local folder or zoo:draft"
        ) from e
    return model, tok


def _engine(model, tok, backend: str):
    from hogwild.driver import _pad_id
    from hogwild.model import Engine

    try:
        return Engine(model, backend=backend, pad_id=_pad_id(tok))
    except NotImplementedError as e:
        raise UserError(str(e)) from e


SMALL_MODEL_PARAMS = 50_000_000


@contextlib.contextmanager
def _threads_for(model):
    """One intra-op thread for a small model on the CPU (zoo models, tests): its ops take
    microseconds, and a thread pool's hand-offs cost more than they save, far more on a busy machine
    (the demo measured 18.6 s for 64 passes with two threads under load against 1.5 s with one)."""
    p = next(model.parameters())
    small = p.device.type == "cpu" and sum(q.numel() for q in model.parameters()) < SMALL_MODEL_PARAMS
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Display:
    """Live side-by-side panels (rich) on a terminal; finished steps as plain lines otherwise."""

    def __init__(self, names, live: bool, lines: int = 18):
        self.names, self.lines, self.printed, self.last = names, lines, 0, 0.0
        self.live = None
        self.driver = None
        if live:
            from rich.live import Live

            self.live = Live(self._render({n: "" for n in names}, 0), refresh_per_second=8, transient=False)

    def _render(self, texts, passes):
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in texts:
            grid.add_column(ratio=1)
        cells = []
        for name, text in texts.items():
            tail = "\n".join(text.splitlines()[-self.lines :])
            cells.append(Panel(Text(tail), title=Text(name), height=self.lines + 2))  # no markup parsing
        grid.add_row(*cells)
        outer = Table.grid(expand=True)
        outer.add_row(grid)
        outer.add_row(f"forward passes: {passes}")
        return outer

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            if self.driver is not None:  # the last state, whatever the refresh throttle skipped
                self.live.update(self._render(self.driver.worker_texts(), self.driver.passes))
            self.live.__exit__(*exc)

    def __call__(self, driver):
        self.driver = driver
        if self.live:
            now = time.perf_counter()
            if now - self.last > 0.1:
                self.last = now
                self.live.update(self._render(driver.worker_texts(), driver.passes))
            return
        for s in driver.history[self.printed :]:
            print(f"[pass {s.finished_at}] {s.text.rstrip()}", flush=True)
        self.printed = len(driver.history)


def solve(cfg: GenerateConfig, opts: SolveOptions, common: CommonOptions, problem: str | None = None) -> int:
    """Solve one problem with parallel workers, streaming them side by side."""
    from hogwild.driver import Hogwild

    problem = problem or DEFAULT_PROBLEM
    model, tok = load_model(opts.model, common)
    engine = _engine(model, tok, cfg.backend)
    live = sys.stdout.isatty() and not opts.plain
    driver = Hogwild(engine, tok, problem, cfg, seed=common.seed)
    names = cfg.worker_names
    print(
        f"hogwild: {cfg.workers} workers ({', '.join(names)}), {cfg.layout} layout, budget {cfg.budget} passes"
    )
    if opts.model.startswith("zoo:"):
        print(ZOO_NOTE)
    display = _Display(list(names), live)
    driver.callback = display
    try:
        with display, _threads_for(model):
            res = driver.run()
    except NotImplementedError as e:  # e.g. a view longer than the model's sliding window
        raise UserError(str(e)) from e
    except KeyboardInterrupt:
        print(f"\ninterrupted after {driver.passes} forward passes; what the workers had:")
        for name, text in driver.worker_texts().items():
            print(f"--- {name}\n{text}")
        return 130
    for name, text in res.workers.items():
        print(f"--- {name}\n{text.rstrip()}")
    print(f"answer: {res.answer if res.answer is not None else '(none)'} (by {res.finished_by})")
    print(
        f"forward passes: {res.forward_passes}, tokens per worker: {res.tokens}, finished steps: "
        f"{len(res.history)}, {res.seconds:.1f} s"
    )
    return 0


def _add_problem(p):
    p.add_argument("problem", nargs="?", default=None, help=f"the problem (default: {DEFAULT_PROBLEM!r})")


def evaluate_cmd(cfg: GenerateConfig, opts: EvalOptions, common: CommonOptions) -> int:
    """Accuracy against the budget (forward passes) on a math data set: scored at every
    ``--record-at`` budget and at ``--budget``."""
    from hogwild.evaluate import evaluate, load_problems, reproduction_status
    from papercore.io import write_json
    from papercore.runtime import progress

    if opts.limit is not None and opts.limit < 1:
        raise UserError(f"--limit must be at least 1, got {opts.limit}")
    problems = load_problems(opts.dataset, opts.split, opts.limit)
    if not problems:
        raise UserError(f"dataset {opts.dataset} has no problems")
    model, tok = load_model(opts.model, common)
    engine = _engine(model, tok, cfg.backend)
    try:
        with _threads_for(model):
            report = evaluate(
                engine, tok, problems, cfg, progress=lambda x: progress(x, desc="problems"), seed=common.seed
            )
    except NotImplementedError as e:  # e.g. a view longer than a sliding window
        raise UserError(str(e)) from e
    status = reproduction_status(opts.model, sum(p.numel() for p in model.parameters()), opts.dataset)
    report["model"] = opts.model
    report["dataset"] = opts.dataset
    report["status"] = status
    print(
        f"{len(problems)} problems from {opts.dataset}, model {opts.model}, {cfg.workers} workers, {cfg.layout}"
    )
    print("budget  accuracy")
    for b, acc in report["accuracy"].items():
        print(f"{b:>6}  {100 * acc:6.1f}%")
    print(f"status: {status}")
    if opts.out:
        write_json(opts.out / "results.json", report)
        if opts.plot:
            plot_accuracy(report, opts.out / "results.png", title=f"{opts.model} on {opts.dataset}")
        write_resolved_config(opts.out, cfg, opts, common=common)
        print(f"wrote {opts.out / 'results.json'}")
    return 0


def plot_accuracy(report: dict, path: Path, title: str = "") -> Path:
    """Accuracy against the budget (forward passes) at which the answers were scored."""
    from papercore.plot import curves

    records = [{"budget": int(b), "accuracy": a} for b, a in report["accuracy"].items()]
    return curves(sorted(records, key=lambda r: r["budget"]), path, ["accuracy"], x="budget", title=title)


@dataclass
class BenchOptions:
    """What ``hogwild bench`` times (it runs no generation, so it takes no GenerateConfig)."""

    workers: tuple[int, ...] = field(default=(1, 2, 4), metadata={"help": "worker counts"})
    contexts: tuple[int, ...] = field(default=(512, 2048), metadata={"help": "tokens in each worker's view"})
    q_heads: int = field(default=8, metadata={"help": "query heads of the attention case"})
    kv_heads: int = field(default=2, metadata={"help": "key/value heads of the attention case"})
    head_dim: int = field(default=64, metadata={"help": "head dimension of the attention case"})
    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "model for the decode-step timing ('' to skip)"}
    )


def bench(opts: BenchOptions, common: CommonOptions) -> int:
    """Time one attention step (hogwild vs independent SDPA vs rotate-and-concatenate) and a decode step."""
    import torch

    from hogwild.bench import (
        independent_inputs,
        make_case,
        reference_output,
        run_hogwild,
        run_naive,
        sdpa,
        wall_time_ms,
    )
    from papercore.kernels.triton_guard import triton_mode

    device, dtype = common.torch_device, common.torch_dtype
    backend = "triton" if triton_mode(device) == "gpu" else "torch"
    print(
        f"attention, {device} {str(dtype).removeprefix('torch.')}, hogwild backend {backend} (wall-clock ms, median)"
    )
    if backend != "triton":
        print(
            "note: no CUDA GPU here, so these are CPU timings of the torch reference: they check that "
            "everything runs, not the kernel's speed (benchmarks/bench_attention.py measures that on a GPU)"
        )
    print(f"{'W':>3} {'context':>8} {'hogwild':>9} {'independent':>12} {'naive':>9}  max error")
    for w in opts.workers:
        for t in opts.contexts:
            case = make_case(w, t, opts.q_heads, opts.kv_heads, opts.head_dim, dtype, device)
            ref = reference_output(case)
            err = (run_hogwild(case, backend).float() - ref).abs().max().item()
            q, k, v = independent_inputs(case)
            th = wall_time_ms(lambda case=case: run_hogwild(case, backend))
            ti = wall_time_ms(lambda q=q, k=k, v=v: sdpa(q, k, v))
            tn = wall_time_ms(lambda case=case: run_naive(case))
            print(f"{w:>3} {t:>8} {th:>9.3f} {ti:>12.3f} {tn:>9.3f}  {err:.1e}")
    if opts.model:
        from hogwild.cache import Row

        model, tok = load_model(opts.model, common)
        for w in opts.workers:
            engine = _engine(model, tok, "auto")
            engine.cache.create("common")
            engine.step([Row("common", ["common"], list(range(3, 3 + 256)))])
            names = [f"w{i}" for i in range(w)]
            for n in names:
                engine.cache.create(n)
            rows = [Row(n, ["common", n], [5]) for n in names]
            ms = wall_time_ms(lambda rows=rows, engine=engine: engine.step(rows), warmup=2, rep=10)
            ids = torch.randint(3, 200, (w, 257), device=device)
            with torch.no_grad():
                out = model(input_ids=ids[:, :-1], use_cache=True)
                from papercore.llm.hf_compat import cache_kwarg, output_cache

                past = output_cache(out)

                def hf_step(ids=ids, past=past):
                    model(input_ids=ids[:, -1:], **{cache_kwarg(model): past}, use_cache=True)
                    past.crop(-1)

                hf = wall_time_ms(hf_step, warmup=2, rep=10)
            print(f"decode step, {opts.model}, {w} workers over a 256-token prompt: hogwild {ms:.2f} ms, "
                  f"transformers DynamicCache batch of {w}: {hf:.2f} ms")  # fmt: skip
    return 0


def demo(cfg: GenerateConfig, common: CommonOptions) -> int:
    """Two workers on the zoo model, 64 sampled forward passes (mechanics only; the demo preset)."""
    return solve(cfg, SolveOptions(plain=True), common, DEFAULT_PROBLEM)


app = CLI(
    "hogwild",
    "Hogwild! Inference: parallel LLM workers sharing one KV cache (solve, eval, bench, demo).",
    [
        Command(
            "solve",
            solve,
            "solve a problem with parallel workers, streamed side by side",
            config=GenerateConfig,
            options=SolveOptions,
            add_arguments=_add_problem,
            preset=_preset_option(),
        ),
        Command(
            "eval",
            evaluate_cmd,
            "accuracy against the budget on a math data set",
            config=GenerateConfig,
            options=EvalOptions,
            preset=_preset_option(),
        ),
        Command("bench", bench, "time the attention and a decode step", options=BenchOptions),
        Command(
            "demo",
            demo,
            "two workers on the built-in zoo model (mechanics only)",
            config=GenerateConfig,
            preset=_preset_option("demo"),
        ),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return app.main(argv or ["demo"])


if __name__ == "__main__":
    sys.exit(main())
