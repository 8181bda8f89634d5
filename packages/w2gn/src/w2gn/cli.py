"""``w2gn`` command line: fit a map, transport points, run the W2 benchmark, demo.

With no data arguments every command runs on built-in samplers: ``w2gn fit`` maps a standard normal
to a Swiss roll in 2-D, ``w2gn bench`` runs a small Gaussian suite, ``w2gn demo`` fits a 2-D
ICNN-potential pair with a known map and prints a metrics table against the baselines.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import write_json
from w2gn import __version__
from w2gn.config import W2GNConfig, W2GNTrainConfig

log = logging.getLogger(__name__)


@dataclass
class FitOptions:
    source: str = field(
        default="normal",
        metadata={
            "help": "P: a .npy/.csv/.safetensors file of [n, d] points, or a built-in sampler (normal, gaussian[:SEED], mixture[:SEED], swiss_roll, moons, 8gaussians, checkerboard)"
        },
    )
    target: str = field(
        default="swiss_roll", metadata={"help": "Q: a file or a built-in sampler, as --source"}
    )
    dim: int = field(default=2, metadata={"help": "dimension of built-in samplers (files set their own)"})
    out: Path = field(
        default=Path("w2gn-run"), metadata={"help": "output folder: the map, metrics, checkpoints, plots"}
    )
    resume: bool = field(default=False, metadata={"help": "continue an interrupted fit in --out"})
    plot: bool = field(default=True, metadata={"help": "write map.png (2-D) and curves.png"})


def _samplers(opts: FitOptions):
    from w2gn.data import resolve

    return resolve(opts.source, opts.dim), resolve(opts.target, opts.dim)


def fit_cmd(cfg: W2GNConfig, train: W2GNTrainConfig, opts: FitOptions, common: CommonOptions) -> int:
    """Fit the OT map from --source to --target."""
    from w2gn.solver import fit

    if opts.resume:
        check_resume(opts.out, cfg, train)
    elif (opts.out / "checkpoint").exists() or (opts.out / "map.json").exists():
        raise UserError(
            f"--out {opts.out} already holds a fit: pass --resume to continue it, or a new folder"
        )
    source, target = _samplers(opts)
    write_resolved_config(opts.out, cfg, train, opts, common=common)
    T = fit(
        source, target, cfg, train, out=opts.out, seed=common.seed, resume=opts.resume, device=common.device
    )
    print(f"fitted {cfg.solver} in D={T.dim}: {T.info['steps']} steps, {T.info['seconds']} s; "
          f"W2^2 estimate {T.w2():.4f}; saved to {opts.out}")  # fmt: skip
    if opts.plot and T.dim == 2:
        _plot_map(T, source, target, opts.out / "map.png")
        print(f"plot: {opts.out / 'map.png'}")
    return 0


def _plot_map(T, source, target, path: Path, n: int = 1000) -> None:
    from papercore.ot.samplers import ArraySampler, as_sampler
    from papercore.plot import map_2d

    gen = torch.Generator().manual_seed(0)
    P = as_sampler(source) if not hasattr(source, "sample") else source
    Q = as_sampler(target) if not hasattr(target, "sample") else target
    x = P.sample(n, gen) if not isinstance(P, ArraySampler) else P.data[:n]
    y = Q.sample(n, gen) if not isinstance(Q, ArraySampler) else Q.data[:n]
    map_2d(
        path,
        x,
        T.forward(x),
        target=y,
        potential=lambda p: T.potential(p),
        title="W2GN map: x -> grad psi(x)",
    )


@dataclass
class TransportOptions:
    model: Path = field(default=Path("w2gn-run"), metadata={"help": "folder written by `w2gn fit`"})
    input: Path | None = field(
        default=None, metadata={"help": "points to map: .npy, .csv or .safetensors [n, d]"}
    )
    out: Path = field(
        default=Path("mapped.npy"),
        metadata={"help": "where to write the mapped points (.npy, .csv, .safetensors)"},
    )
    inverse: bool = field(default=False, metadata={"help": "map Q -> P with the conjugate potential"})


def transport_cmd(opts: TransportOptions, common: CommonOptions) -> int:
    """Map points through a fitted map (or its inverse)."""
    from papercore.io import load_array, save_array
    from w2gn.map import W2Map

    if opts.input is None:
        raise UserError("--input is required: a .npy, .csv or .safetensors file of [n, d] points")
    T = W2Map.load(opts.model, device=common.torch_device)
    x = load_array(opts.input)
    if x.shape[1] != T.dim:
        raise UserError(
            f"--input has {x.shape[1]} columns but the map in {opts.model} was fitted in dimension {T.dim}"
        )
    y = T.inverse(x) if opts.inverse else T.forward(x)
    save_array(opts.out, y)
    print(f"mapped {len(x)} points ({'inverse' if opts.inverse else 'forward'}) to {opts.out}")
    return 0


@dataclass
class BenchOptions:
    suite: str = field(default="gaussians", metadata={"help": "gaussians or mix3tomix10"})
    dims: list[int] = field(default_factory=lambda: [2, 4], metadata={"help": "dimensions"})
    solvers: list[str] = field(
        default_factory=lambda: ["w2gn", "bures"], metadata={"help": "w2gn, mm, bures, emd"}
    )
    seeds: int = field(default=1, metadata={"help": "seeds per dimension (mean ± std)"})
    pairs: Path | None = field(
        default=None,
        metadata={"help": "the W2 benchmark's benchmarks/Mix3toMix10 folder (its published pairs)"},
    )
    out: Path | None = field(
        default=None, metadata={"help": "write results.json, results.md and a plot here"}
    )
    plot: bool = field(default=True, metadata={"help": "write l2_uvp.png next to the results"})


def bench_cmd(cfg: W2GNConfig, train: W2GNTrainConfig, opts: BenchOptions, common: CommonOptions) -> int:
    """Score the solvers and baselines on a suite; a table of L2-UVP (%) by dimension."""
    from w2gn import bench

    if opts.suite not in bench.SUITES:
        raise UserError(f"--suite {opts.suite!r}: choose from {', '.join(bench.SUITES)}")
    if opts.pairs is not None and opts.suite != "mix3tomix10":
        raise UserError("--pairs holds Mix3toMix10 pairs: use it with --suite mix3tomix10")
    if opts.pairs is not None and not opts.pairs.is_dir():
        raise UserError(f"--pairs {opts.pairs}: no such folder (the W2 benchmark's benchmarks/Mix3toMix10)")
    if opts.seeds < 1 or any(d < 1 for d in opts.dims):
        raise UserError("--seeds and every --dims value must be >= 1")
    rows = bench.run(opts.suite, opts.dims, opts.solvers, opts.seeds, cfg, train, pairs=opts.pairs,
                     device=common.torch_device, first_seed=common.seed)  # fmt: skip
    summary = bench.summarize(rows)
    md = bench.table(summary)
    print(f"L2-UVP forward (%), mean ± std over {opts.seeds} seed(s), {train.steps} steps per fit:\n{md}")
    if opts.out:
        write_json(opts.out / "results.json", {"rows": rows, "summary": summary})
        (opts.out / "results.md").write_text(md + "\n")
        write_resolved_config(opts.out, cfg, train, opts, common=common)
        if opts.plot:
            from papercore.plot import pareto

            pts = [(s["dim"], s["l2_uvp_fwd"], s["solver"]) for s in summary]
            pareto(opts.out / "l2_uvp.png", pts, xlabel="dimension D", ylabel="L2-UVP forward (%)",
                   maximize_y=False, title=f"{opts.suite}: L2-UVP by dimension")  # fmt: skip
        print(f"results: {opts.out / 'results.json'}")
    return 0


def demo(common: CommonOptions) -> int:
    """Fit a 2-D ICNN-potential pair with a known map; print a metrics table; write map.png."""
    from papercore.ot.samplers import icnn_problem
    from papercore.plot import map_2d
    from w2gn import bench
    from w2gn.baselines import BuresMap, emd_map
    from w2gn.solver import fit

    logging.getLogger("papercore").setLevel(logging.WARNING)
    out = Path(tempfile.mkdtemp(prefix="w2gn-demo-"))
    prob = icnn_problem(2, seed=common.seed)
    cfg, train = (
        W2GNConfig(pretrain_steps=300),
        W2GNTrainConfig(steps=1000, batch_size=256, checkpoint_every=0),
    )
    T = fit(prob.P, prob.Q, cfg, train, seed=common.seed, device="cpu")
    B = BuresMap(prob.P, prob.Q)
    gen = torch.Generator().manual_seed(bench.TEST_SEED + 1)
    ys = prob.Q.sample(bench.EMD_POINTS, gen)
    mean_q = prob.Q.moments()[0].float()
    rows = {
        "w2gn": bench.score(prob, T.forward, T.inverse),
        "bures (linear)": bench.score(prob, B.forward, B.inverse),
        "emd (in-sample)": bench.score(prob, lambda x: emd_map(x, ys), n=bench.EMD_POINTS),
        "identity": bench.score(prob, lambda x: x, lambda y: y),
        "constant": bench.score(prob, lambda x: mean_q.expand_as(x)),
    }
    print(f"2-D ICNN-potential pair (truth known), W2GN {train.steps} steps in {T.info['seconds']} s:")
    print("| map | L2-UVP fwd (%) | L2-UVP inv (%) | cos fwd |\n|---|---|---|---|")
    for name, r in rows.items():
        inv = f"{r['l2_uvp_inv']:.2f}" if "l2_uvp_inv" in r else "-"
        print(f"| {name} | {r['l2_uvp_fwd']:.2f} | {inv} | {r['cos_fwd']:.3f} |")
    x, y = prob.sample_pairs(800, torch.Generator().manual_seed(1))
    map_2d(
        out / "map.png",
        x,
        T.forward(x),
        target=y,
        potential=lambda p: T.potential(p),
        title="W2GN on a 2-D ICNN pair",
    )
    T.save(out / "map")
    write_json(out / "metrics.json", rows)
    print(f"map.png, metrics.json and the fitted map in {out}")
    print(json.dumps({k: round(v["l2_uvp_fwd"], 3) for k, v in rows.items()}))
    return 0


app = CLI(
    "w2gn",
    "W2GN: optimal transport maps as gradients of input-convex networks, and the W2 benchmark.",
    [
        Command(
            "fit",
            fit_cmd,
            "fit the OT map from --source to --target",
            config=(W2GNConfig, W2GNTrainConfig),
            options=FitOptions,
        ),
        Command(
            "transport",
            transport_cmd,
            "map points with a fitted map (or --inverse)",
            options=TransportOptions,
        ),
        Command(
            "bench",
            bench_cmd,
            "score solvers and baselines on a suite (L2-UVP by dimension)",
            config=(W2GNConfig, W2GNTrainConfig),
            options=BenchOptions,
        ),  # fmt: skip
        Command("demo", demo, "fit a 2-D pair with a known map and print a metrics table"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
