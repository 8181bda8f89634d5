"""``neural-ot`` command line: fit a map, apply it, benchmark the suites, demo.

With no data arguments ``neural-ot fit`` uses a built-in problem (``--data grid``: the 4×4 Gaussian
grid with permuted target classes); ``neural-ot demo`` runs class-guided GNOT on it against POT ``emd``
and writes a PNG of the plan coloured by class. The offline-RL commands (``neural-ot rl ...``) are a
separate command group (``neural_ot.rl``).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neural_ot import __version__
from neural_ot.config import NOTConfig, NOTTrainConfig
from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import write_json

log = logging.getLogger(__name__)
BUILTIN = ("grid", "moons", "digits")


@dataclass
class FitOptions:
    source: Path | None = field(
        default=None, metadata={"help": "source samples: .npy/.csv/.safetensors [n, d] (default: --data)"}
    )
    target: Path | None = field(default=None, metadata={"help": "target samples [m, d] (with --source)"})
    cost: str = field(
        default="quadratic",
        metadata={"help": "quadratic, weak:GAMMA, class-guided or pair-guided[:mse|mae|rmse|perceptual]"},
    )
    labels: list[Path] = field(
        default_factory=list,
        metadata={
            "help": "two files: source labels [n] and target labels [m] (-1 = unlabelled); class-guided"
        },
    )
    image_shape: list[int] = field(
        default_factory=list, metadata={"help": "C H W of flattened images (needed for --map-net unet)"}
    )
    data: str = field(
        default="grid", metadata={"help": "built-in problem without --source: grid, moons or digits"}
    )
    labelled: int = field(default=10, metadata={"help": "built-in data: labelled targets per class"})
    class_size: int = field(default=4, metadata={"help": "class-guided: source samples per class in a batch"})
    out: Path = field(default=Path("neural-ot-run"), metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted fit in --out"})
    plot: bool = field(default=True, metadata={"help": "write plan.png (2-D data) and curves.png"})


def _builtin(name: str, labelled: int, seed: int):
    from neural_ot import data as D

    if name == "grid":
        p = D.gaussian_grid(seed=seed)
    elif name == "moons":
        p = D.two_moons(seed=seed)
    elif name == "digits":
        p = D.digits_to_glyphs(seed=seed)
    else:
        raise UserError(f"--data {name!r}: choose from {', '.join(BUILTIN)}")
    return p, D.labelled_subset(p.target_labels, labelled, seed=seed)


def _load_labels(path: Path) -> np.ndarray:
    from papercore.io import load_array

    arr = load_array(path)
    if arr.shape[1] != 1:
        raise UserError(f"{path} must hold one label per row, got shape {arr.shape}")
    return arr[:, 0]


def fit_cmd(cfg: NOTConfig, train: NOTTrainConfig, opts: FitOptions, common: CommonOptions) -> int:
    """Fit a transport map from --source to --target (or a built-in problem) for --cost."""
    from neural_ot.functionals import parse_cost
    from neural_ot.solver import fit
    from papercore.io import load_array

    if opts.resume:
        check_resume(opts.out, cfg, train)
    elif (opts.out / "checkpoint").exists() or (opts.out / "transport.json").exists():
        raise UserError(
            f"--out {opts.out} already holds a fit: pass --resume to continue it, or a new folder"
        )
    if (opts.source is None) != (opts.target is None):
        raise UserError("give both --source and --target (or neither, for the built-in --data)")
    if opts.labels and len(opts.labels) != 2:
        raise UserError(f"--labels takes two files (source labels, target labels), got {len(opts.labels)}")
    if opts.image_shape and len(opts.image_shape) != 3:
        raise UserError(f"--image-shape takes C H W, got {opts.image_shape}")
    shape = tuple(opts.image_shape) or None
    problem = None
    if opts.source is not None:
        xs, ys = load_array(opts.source), load_array(opts.target)
        ls, lt = (_load_labels(opts.labels[0]), _load_labels(opts.labels[1])) if opts.labels else (None, None)
    else:
        problem, lt = _builtin(opts.data, opts.labelled, common.seed)
        xs, ys, ls = problem.source, problem.target, problem.source_labels
        shape = shape or problem.image_shape
    features = None
    if opts.cost == "pair-guided:perceptual":
        if lt is None or (np.asarray(lt) < 0).all():
            raise UserError(
                "pair-guided:perceptual trains its feature net on labelled targets: pass --labels"
            )
        from neural_ot.evaluate import train_classifier

        keep = np.asarray(lt) >= 0
        features = train_classifier(
            ys[keep], np.asarray(lt)[keep].astype(np.int64), shape, seed=common.seed
        ).features
    cost = parse_cost(opts.cost, features=features)
    write_resolved_config(opts.out, cfg, train, opts, common=common)
    m = fit(xs, ys, cost, cfg, train, source_labels=ls, target_labels=lt, image_shape=shape,
            class_size=opts.class_size, out=opts.out, seed=common.seed, resume=opts.resume,
            device=common.device, plot=opts.plot)  # fmt: skip
    print(f"fitted a {'stochastic' if m.stochastic else 'deterministic'} map for cost {cost.name} in D={m.dim}: "
          f"{m.info['steps']} steps, {m.info['seconds']} s; saved to {opts.out}")  # fmt: skip
    if problem is not None and problem.name.startswith(("grid", "two-moons")):
        from neural_ot import data as D
        from neural_ot.evaluate import transfer_accuracy

        classify = D.grid_classify if problem.name.startswith("grid") else _moons_classifier(problem)
        acc = transfer_accuracy(
            m, problem.source[:2000], problem.source_labels[:2000], problem.perm, classify
        )
        print(f"class accuracy of T on the built-in {problem.name} (averaged over z): {acc:.3f}")
        write_json(opts.out / "metrics.json", {"class_accuracy": acc})
        if opts.plot:
            plan_png(opts.out / "plan.png", problem, m)
            print(f"plot: {opts.out / 'plan.png'}")
    return 0


def _moons_classifier(problem):
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(5).fit(problem.target, problem.target_classes)
    return knn.predict


def plan_png(path: Path, problem, tmap, emd_images=None, n: int = 1500, title: str = "") -> Path:
    """Source coloured by class, T(x, z) coloured by the source class, and (optionally) POT emd's images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if emd_images is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2))
    x, lx = problem.source[:n], problem.source_labels[:n]
    tx = tmap.transport(x, generator=torch.Generator().manual_seed(0))
    cmap = plt.get_cmap("tab20")
    K = int(lx.max()) + 1
    col = cmap(problem.perm[lx] % 20) if K <= 20 else None  # integer index: the k-th colour
    tc = cmap(problem.target_classes[:n] % 20)
    axes[0].scatter(x[:, 0], x[:, 1], s=3, c=col)
    axes[0].set_title("source, coloured by the target class it must reach", fontsize=8)
    axes[1].scatter(problem.target[:n, 0], problem.target[:n, 1], s=2, c=tc, alpha=0.15)
    axes[1].scatter(tx[:, 0], tx[:, 1], s=3, c=col)
    axes[1].set_title(
        f"T(x, z) ({tmap.cost.get('name', '')}), same colours; faint: target by class", fontsize=8
    )
    if emd_images is not None:
        axes[2].scatter(problem.target[:n, 0], problem.target[:n, 1], s=2, c=tc, alpha=0.15)
        axes[2].scatter(emd_images[:, 0], emd_images[:, 1], s=3, c=col[: len(emd_images)])
        axes[2].set_title("POT emd (quadratic cost), barycentric images", fontsize=8)
    for a in axes:
        a.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class TransportOptions:
    model: Path = field(default=Path("neural-ot-run"), metadata={"help": "folder written by `neural-ot fit`"})
    input: Path = field(
        default=Path("x.npy"), metadata={"help": "source points [n, d] (.npy/.csv/.safetensors)"}
    )
    out: Path = field(default=Path("y.npy"), metadata={"help": "output file for T(x, z)"})
    draws: int = field(
        default=1, metadata={"help": "noise draws per point; > 1 writes [n, draws, d] (.npy only)"}
    )


def transport_cmd(opts: TransportOptions, common: CommonOptions) -> int:
    """Apply a fitted map to --input and write T(x, z) to --out."""
    from neural_ot.transport import TransportMap
    from papercore.io import load_array, save_array

    if opts.draws < 1:
        raise UserError(f"--draws must be >= 1, got {opts.draws}")
    m = TransportMap.load(opts.model, device=common.torch_device)
    x = load_array(opts.input)
    g = torch.Generator(device=m.device).manual_seed(common.seed)
    if opts.draws == 1:
        save_array(opts.out, m.transport(x, generator=g))
    else:
        if opts.out.suffix.lower() != ".npy":
            raise UserError("--draws > 1 writes an [n, draws, d] array: use a .npy --out")
        np.save(opts.out, m.sample(x, opts.draws, generator=g))
    print(f"wrote T(x, z) of {len(x)} points ({opts.draws} draw(s) each) to {opts.out}")
    return 0


@dataclass
class BenchOptions:
    suite: str = field(default="grid", metadata={"help": "grid, gaussians, digits or pairs"})
    seeds: int = field(default=3, metadata={"help": "seeds (mean ± std)"})
    steps: int = field(default=0, metadata={"help": "max-min steps per fit (0: the suite's budget)"})
    size: int = field(default=8, metadata={"help": "digits: glyph image side (8 on CPU; 32 for the GPU run)"})
    map_net: str = field(default="", metadata={"help": "digits: map network override (e.g. unet)"})
    source_domain: str = field(
        default="digits",
        metadata={"help": "digits: domain A, digits (scikit-learn) or glyphs-b (a second glyph alphabet)"},
    )
    out: Path | None = field(
        default=None, metadata={"help": "write results.json, results.md (and results.png) here"}
    )
    plot: bool = field(default=True, metadata={"help": "write results.png next to the results"})


def bench_cmd(opts: BenchOptions, common: CommonOptions) -> int:
    """Fixed-budget fits on a suite, with the baselines on the same data, over several seeds."""
    from neural_ot import bench

    if opts.suite not in bench.SUITES:
        raise UserError(f"--suite {opts.suite!r}: choose from {', '.join(bench.SUITES)}")
    if opts.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {opts.seeds}")
    kw = {}
    if opts.suite == "digits":
        kw = {"size": opts.size, "map_net": opts.map_net or None, "source": opts.source_domain}
    dev = "cpu" if common.device == "auto" and not torch.cuda.is_available() else common.device
    dev = str(common.torch_device) if dev == "auto" else dev
    t0 = time.perf_counter()
    rows = bench.run(opts.suite, opts.seeds, common.seed, opts.steps or None, dev, **kw)
    md = bench.table(rows) + f"\n\n(total {time.perf_counter() - t0:.0f} s on {dev})"
    print(md)
    if opts.out:
        write_json(opts.out / "results.json", rows)
        (opts.out / "results.md").write_text(md + "\n")
        write_resolved_config(opts.out, opts, common=common)
        if opts.plot:
            from papercore.plot import pareto

            pts = [(r["seed"], v, k) for r in rows for k, v in r.items()
                   if isinstance(v, float) and ("accuracy" in k or "uvp" in k or "fd" in k)]  # fmt: skip
            pareto(
                opts.out / "results.png",
                pts,
                xlabel="seed",
                ylabel="metric",
                title=f"neural-ot bench {opts.suite}",
            )
    return 0


def demo(common: CommonOptions) -> int:
    """The 4×4 grid with permuted target classes: class-guided GNOT vs POT emd, a table and a PNG."""
    from neural_ot import bench
    from neural_ot import data as D
    from neural_ot.evaluate import emd_plan, plan_accuracy, transfer_accuracy
    from neural_ot.solver import fit

    logging.getLogger("papercore").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="neural-ot-demo-"))
    p = D.gaussian_grid(seed=common.seed)
    lt = D.labelled_subset(p.target_labels, 10, seed=common.seed)
    cfg, tcfg = bench.GRID
    tcfg = type(tcfg).from_dict({**tcfg.to_dict(), "steps": 300})
    t0 = time.perf_counter()
    m = fit(p.source, p.target, "class-guided", cfg, tcfg, source_labels=p.source_labels, target_labels=lt,
            class_size=4, seed=common.seed, device="cpu", plot=False)  # fmt: skip
    secs = time.perf_counter() - t0
    test = D.gaussian_grid(n=1000, seed=common.seed + 10_000)
    acc = transfer_accuracy(m, test.source, test.source_labels, p.perm, D.grid_classify)
    plan = emd_plan(test.source, p.target[:1000])
    emd = plan_accuracy(plan, test.source_labels, p.perm, D.grid_classify(p.target[:1000]))
    print(
        f"4x4 Gaussian grid, target classes permuted, 10 labelled targets per class; GNOT {tcfg.steps} steps in {secs:.0f} s"
    )
    print("| plan | class accuracy |\n|---|---|")
    print(f"| GNOT, class-guided functional | {acc:.3f} |\n| POT emd, quadratic cost | {emd:.3f} |")
    print("(chance is 1/16 = 0.06: quadratic-cost OT keeps each cell in place, the functional moves it)")
    bary = (plan @ p.target[:1000].astype(np.float64)) * len(plan)
    plan_png(out / "plan.png", test, m, emd_images=bary, title="class-guided GNOT vs POT emd")
    m.save(out / "model")
    write_json(out / "metrics.json", {"gnot_accuracy": acc, "emd_accuracy": emd, "steps": tcfg.steps})
    print(f"plan.png, metrics.json and the model in {out}")
    return 0


COMMANDS = [
    Command(
        "fit",
        fit_cmd,
        "fit a transport map for a cost (or a built-in problem)",
        config=(NOTConfig, NOTTrainConfig),
        options=FitOptions,
    ),  # fmt: skip
    Command("transport", transport_cmd, "apply a fitted map to an array", options=TransportOptions),
    Command("bench", bench_cmd, "the suites against their baselines, several seeds", options=BenchOptions),
    Command("demo", demo, "the permuted grid: GNOT vs POT emd, a PNG and a table"),
]
# neural_ot.rl (issue 23) will add its "rl ..." commands (papercore.cli command groups) to this list.

app = CLI("neural-ot", "Neural optimal transport with general cost functionals (NOT, GNOT).", COMMANDS,
          version=__version__)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
