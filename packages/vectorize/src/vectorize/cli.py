"""``vectorize`` command line.

``vectorize IN.png OUT.svg`` vectorises a drawing (``convert`` is the default command);
``vectorize train --part primitives|cleaning --out DIR`` trains a model; ``vectorize eval`` scores
the pipeline and the skeleton baseline on seeded synthetic pages; ``vectorize demo`` runs in
seconds with no arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import write_json
from vectorize import __version__
from vectorize.config import (
    CleanConfig,
    MergeConfig,
    NetConfig,
    PipelineConfig,
    RefineConfig,
    VectorizeTrainConfig,  # fmt: skip
)

log = logging.getLogger(__name__)


@dataclass
class ConvertOptions:
    format: str | None = field(default=None, metadata={"help": "svg or dxf (default: OUT's suffix)"})
    model: str = field(
        default="builtin",
        metadata={
            "help": "folder written by `vectorize train` (primitives/, cleaning/), 'builtin' "
            "(trained on first use, cached) or 'none' (refinement only)"
        },  # fmt: skip
    )
    overlay: bool = field(default=True, metadata={"help": "write OUT.overlay.png (the result on the input)"})


def _add_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="PNG, JPG or TIFF drawing (gray or colour, any size)")
    p.add_argument("output", type=Path, help="OUT.svg or OUT.dxf")


def _models(model: str, clean: bool, device: str):
    from vectorize.train import builtin, load_model

    if model == "none":
        return None, None
    if model == "builtin":
        return builtin("primitives", device), (builtin("cleaning", device) if clean else None)
    root = Path(model)
    if not (root / "primitives" / "model.safetensors").is_file():
        raise UserError(f"--model {model}: no primitives/model.safetensors in it (train one with "
                        "`vectorize train --part primitives --out DIR`, or use --model builtin)")  # fmt: skip
    cleaner = load_model(root / "cleaning", device) if clean and (root / "cleaning").is_dir() else None
    if clean and cleaner is None:
        log.warning("no cleaning/ model in %s: running without cleaning", root)
    return load_model(root / "primitives", device), cleaner


def convert(cfg: PipelineConfig, rcfg: RefineConfig, mcfg: MergeConfig, opts: ConvertOptions,
            common: CommonOptions, input: Path, output: Path) -> int:  # fmt: skip
    """Vectorise IN into OUT (SVG or DXF), with OUT.overlay.png."""
    from vectorize.export import write_drawing, write_overlay
    from vectorize.pipeline import Vectorizer, read_image

    fmt = (opts.format or output.suffix.lstrip(".") or "svg").lower()
    if fmt not in ("svg", "dxf"):
        raise UserError(
            f"unknown output format {fmt!r}: use --format svg or dxf (or an OUT.svg / OUT.dxf name)"
        )
    image = read_image(input)
    dev = str(common.torch_device)
    net, cleaner = _models(opts.model, cfg.clean, dev)
    res = Vectorizer(net, cleaner, cfg, rcfg, mcfg, device=dev)(image, seed=common.seed)
    d = res.drawing
    write_drawing(output, d, fmt)
    if not len(d):
        print(
            f"{input}: no strokes found (ink threshold {cfg.threshold}); wrote an empty drawing to {output}"
        )
        return 0
    if opts.overlay:
        write_overlay(output.with_suffix(".overlay.png"), image, d)
    print(f"{input} ({image.shape[1]}x{image.shape[0]}): {len(d.lines)} lines, {len(d.curves)} curves "
          f"in {res.seconds['total']:.1f} s -> {output}")  # fmt: skip
    return 0


@dataclass
class TrainOptions:
    part: str = field(default="primitives", metadata={"help": "primitives or cleaning"})
    out: Path = field(
        default=Path("vectorize-model"), metadata={"help": "output folder (a --model for convert/eval)"}
    )
    resume: bool = field(default=False, metadata={"help": "continue an interrupted training in --out"})


def train_cmd(net: NetConfig, clean: CleanConfig, train: VectorizeTrainConfig, opts: TrainOptions,
              common: CommonOptions) -> int:  # fmt: skip
    """Train the primitive network or the cleaning U-Net on synthetic patches."""
    from vectorize.train import train_cleaning, train_primitives

    if opts.part not in ("primitives", "cleaning"):
        raise UserError(f"--part {opts.part!r}: choose primitives or cleaning")
    out = opts.out / "runs" / opts.part
    if opts.resume:
        check_resume(out, net if opts.part == "primitives" else clean, train)
    write_resolved_config(out, net if opts.part == "primitives" else clean, train, opts, common=common)
    fn = train_primitives if opts.part == "primitives" else train_cleaning
    _, hist = fn(net if opts.part == "primitives" else clean, train, out=out, seed=common.seed,
                 resume=opts.resume, device=common.device)  # fmt: skip
    # the model goes next to its training run: DIR/primitives or DIR/cleaning
    from vectorize.train import load_model, save_model

    m = load_model(out / opts.part)
    save_model(opts.out / opts.part, m, m.cfg)
    val = [h for h in hist if h.get("split") == "val"]
    print(f"trained {opts.part} for {train.steps} steps; last validation loss "
          f"{val[-1]['loss']:.4f}" if val else f"trained {opts.part}", f"-> {opts.out / opts.part}")  # fmt: skip
    return 0


@dataclass
class EvalOptions:
    model: str = field(default="builtin", metadata={"help": "a `vectorize train` folder, builtin or none"})
    pages: int = field(default=4, metadata={"help": "seeded synthetic test pages"})
    size: int = field(default=256, metadata={"help": "page side (px)"})
    degrade: bool = field(default=False, metadata={"help": "degrade the test pages (scan-like)"})
    out: Path | None = field(default=None, metadata={"help": "write results.json and results.png here"})
    plot: bool = field(default=True, metadata={"help": "write results.png next to the results"})


def run_eval(
    cfg, rcfg, mcfg, opts: EvalOptions, seed: int, device: str, net=None, cleaner=None, verbose=True
):
    """Pipeline (raw network, refined, merged) and the skeleton baseline on seeded pages."""
    from vectorize import synth
    from vectorize.baselines import skeleton_baseline
    from vectorize.evaluate import score, summarize, table
    from vectorize.pipeline import Vectorizer

    rows, shown = [], None
    vec = Vectorizer(net, cleaner, cfg, rcfg, mcfg, device=device)
    for i, (img, _ink, truth) in enumerate(synth.pages(opts.pages, 1000 + seed, opts.size,
                                                      degrade_p=1.0 if opts.degrade else 0.0)):  # fmt: skip
        res = vec(img, seed=seed)
        base = skeleton_baseline(res.ink)
        for name, d in [("ours", res.drawing), ("ours (no merge)", res.refined), ("network only", res.raw),
                        ("skeleton + DP", base)]:  # fmt: skip
            if name == "network only" and net is None:
                continue
            rows.append(
                {"method": name, "page": i, **score(d, truth), "seconds": res.seconds.get("total", 0.0)}
            )
        if shown is None:
            shown = (img, res.drawing, base)
    summary = summarize(rows)
    if verbose:
        print(f"{opts.pages} synthetic {opts.size}x{opts.size} pages (seed {seed}), mean ± std:")
        print(table(summary))
    return rows, summary, shown


def eval_cmd(
    cfg: PipelineConfig, rcfg: RefineConfig, mcfg: MergeConfig, opts: EvalOptions, common: CommonOptions
) -> int:
    """Score the pipeline and the skeleton baseline on seeded synthetic pages."""
    if opts.pages < 1 or opts.size < 64:
        raise UserError("--pages must be >= 1 and --size >= 64")
    dev = str(common.torch_device)
    net, cleaner = _models(opts.model, cfg.clean and opts.degrade, dev)
    rows, summary, shown = run_eval(cfg, rcfg, mcfg, opts, common.seed, dev, net, cleaner)
    if opts.out:
        write_json(opts.out / "results.json", {"rows": rows, "summary": summary})
        write_resolved_config(opts.out, cfg, rcfg, mcfg, opts, common=common)
        if opts.plot:
            _plot(opts.out / "results.png", *shown)
        print(f"results: {opts.out / 'results.json'}")
    return 0


def _plot(path, img, ours, base):
    from papercore.plot import images
    from vectorize.raster import render

    images(path, [img, 1 - render(ours), 1 - render(base)],
           ["input", f"ours ({len(ours)} primitives)", f"skeleton + DP ({len(base)})"])  # fmt: skip


def demo(common: CommonOptions) -> int:
    """Refinement-only pipeline (no network: every primitive starts from re-initialisation) on two
    128x128 synthetic pages against the skeleton baseline; prints a table, writes a PNG and an SVG."""
    from vectorize.export import write_svg

    logging.getLogger("papercore").setLevel(logging.WARNING)
    out = Path(tempfile.mkdtemp(prefix="vectorize-demo-"))
    opts = EvalOptions(pages=2, size=128)
    rows, summary, shown = run_eval(PipelineConfig(clean=False), RefineConfig(iterations=80), MergeConfig(), opts,
                                    common.seed, "cpu")  # fmt: skip
    _plot(out / "demo.png", *shown)
    write_svg(out / "demo.svg", shown[1])
    write_json(out / "metrics.json", {"rows": rows, "summary": summary})
    print(f"demo.png, demo.svg and metrics.json in {out}")
    print(json.dumps({m: round(s["iou"][0], 3) for m, s in summary.items()}))
    return 0


COMMANDS = ("convert", "train", "eval", "demo")
app = CLI(
    "vectorize",
    "Technical drawings from raster to SVG or DXF: `vectorize IN.png OUT.svg`.",
    [
        Command(
            "convert",
            convert,
            "vectorise IN.png into OUT.svg or OUT.dxf (the default command)",
            config=(PipelineConfig, RefineConfig, MergeConfig),
            options=ConvertOptions,
            add_arguments=_add_io,
        ),
        Command(
            "train",
            train_cmd,
            "train the primitive network or the cleaning U-Net",
            config=(NetConfig, CleanConfig, VectorizeTrainConfig),
            options=TrainOptions,
        ),
        Command(
            "eval",
            eval_cmd,
            "score the pipeline and the skeleton baseline on synthetic pages",
            config=(PipelineConfig, RefineConfig, MergeConfig),
            options=EvalOptions,
        ),
        Command("demo", demo, "refinement-only demo on synthetic pages: a metrics table and a PNG"),
    ],  # fmt: skip
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv = ["convert", *argv]  # vectorize IN OUT
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
