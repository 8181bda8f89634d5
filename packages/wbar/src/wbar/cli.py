"""``wbar`` command line: fit a barycentre, sample it, benchmark the suites, demo.

With no data arguments ``wbar fit`` fits the barycentre of three 2-D location-scatter marginals
(Swiss-roll base) with a known answer; ``wbar demo`` does that with a PNG and a metrics table.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import write_json
from wbar import __version__
from wbar.config import WINConfig, WINTrainConfig

log = logging.getLogger(__name__)
BUILTIN = ("location-scatter", "nongaussian")


@dataclass
class FitOptions:
    marginals: list[str] = field(
        default_factory=list,
        metadata={"help": "marginals as .npy/.csv/.safetensors files of [n, d] points (default: --suite)"},
    )
    weights: list[float] = field(
        default_factory=list, metadata={"help": "barycentric weights, one per marginal (default: uniform)"}
    )
    normalize_weights: bool = field(default=False, metadata={"help": "rescale --weights to sum to 1"})
    suite: str = field(
        default="location-scatter",
        metadata={"help": "built-in marginals when no files are given: location-scatter or nongaussian"},
    )
    dim: int = field(default=2, metadata={"help": "dimension of the built-in suite"})
    base: str = field(
        default="swiss_roll", metadata={"help": "location-scatter base: gaussian, uniform, swiss_roll"}
    )
    out: Path = field(default=Path("wbar-run"), metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted fit in --out"})
    plot: bool = field(default=True, metadata={"help": "write barycenter.png (2-D) and curves.png"})


def _problem(opts: FitOptions):
    from wbar.suites import location_scatter, nongaussian

    if opts.suite == "location-scatter":
        return location_scatter(opts.dim, 3, opts.base, seed=0)
    if opts.suite == "nongaussian":
        return nongaussian(seed=0, dim=opts.dim)
    raise UserError(f"--suite {opts.suite!r}: choose from {', '.join(BUILTIN)}")


def fit_cmd(cfg: WINConfig, train: WINTrainConfig, opts: FitOptions, common: CommonOptions) -> int:
    """Fit the barycentre of --marginals (files) or of a built-in suite."""
    from papercore.io import load_array
    from wbar.solver import check_weights, fit

    if opts.resume:
        check_resume(opts.out, cfg, train)
    elif (opts.out / "checkpoint").exists() or (opts.out / "barycenter.json").exists():
        raise UserError(
            f"--out {opts.out} already holds a fit: pass --resume to continue it, or a new folder"
        )
    problem = None
    if opts.marginals:
        if len(opts.marginals) < 2:
            raise UserError(
                "--marginals needs at least two files: a barycentre of one distribution is itself"
            )
        marginals = [load_array(m) for m in opts.marginals]
    else:
        problem = _problem(opts)
        marginals = problem.marginals
    weights = check_weights(
        opts.weights or (problem.weights if problem else None), len(marginals), opts.normalize_weights
    )
    write_resolved_config(opts.out, cfg, train, opts, common=common)
    bar = fit(marginals, weights, cfg, train, problem=problem, out=opts.out, seed=common.seed, resume=opts.resume,
              device=common.device)  # fmt: skip
    line = f"fitted the barycentre of {len(marginals)} marginals in D={bar.dim}: {bar.info['steps']} outer iterations, {bar.info['seconds']} s"
    if "bw2_uvp_last" in bar.info:
        line += f"; BW2-UVP {bar.info['bw2_uvp_last']:.3f}% (median of the last 5 checks {bar.info['bw2_uvp_median_last5']:.3f}%)"
    print(f"{line}; saved to {opts.out}")
    if opts.plot and bar.dim == 2:
        _plot(
            bar,
            [m if hasattr(m, "sample") else None for m in marginals] if problem else marginals,
            opts.out / "barycenter.png",
        )
        print(f"plot: {opts.out / 'barycenter.png'}")
    return 0


def _plot(bar, marginals, path: Path, n: int = 1500) -> None:
    import numpy as np

    from papercore.plot import samples_2d

    g = torch.Generator().manual_seed(0)
    clouds = []
    for m in marginals:
        clouds.append(m.sample(n, g) if hasattr(m, "sample") else np.asarray(m)[:n])
    clouds.append(bar.sample(n, g))
    labels = [f"P{k + 1} (alpha {w:.2g})" for k, w in enumerate(bar.weights)] + ["barycentre G#N(0, I)"]
    samples_2d(path, *clouds, labels=labels, title="WIN barycentre")


@dataclass
class SampleOptions:
    model: Path = field(default=Path("wbar-run"), metadata={"help": "folder written by `wbar fit`"})
    n: int = field(default=1000, metadata={"help": "number of samples"})
    out: Path = field(default=Path("samples.npy"), metadata={"help": "output .npy, .csv or .safetensors"})
    marginal: int | None = field(
        default=None, metadata={"help": "map the samples to this marginal (0-based) instead"}
    )


def sample_cmd(opts: SampleOptions, common: CommonOptions) -> int:
    """Draw samples of a fitted barycentre (or their images in one marginal)."""
    from papercore.io import save_array
    from wbar.barycenter import Barycenter

    if opts.n < 1:
        raise UserError(f"-n must be >= 1, got {opts.n}")
    bar = Barycenter.load(opts.model, device=common.torch_device)
    x = bar.sample(opts.n, torch.Generator(device=bar.device).manual_seed(common.seed))
    if opts.marginal is not None:
        if not 0 <= opts.marginal < len(bar.weights):
            raise UserError(f"--marginal {opts.marginal}: the model has marginals 0..{len(bar.weights) - 1}")
        x = bar.maps[opts.marginal](x)
    save_array(opts.out, x.cpu().numpy())
    print(f"wrote {opts.n} samples to {opts.out}")
    return 0


@dataclass
class BenchOptions:
    suite: str = field(
        default="location-scatter", metadata={"help": "location-scatter, nongaussian or ave-synth"}
    )
    dims: list[int] = field(default_factory=lambda: [2], metadata={"help": "dimensions (location-scatter)"})
    bases: list[str] = field(
        default_factory=lambda: ["gaussian"], metadata={"help": "location-scatter bases"}
    )
    seeds: int = field(default=1, metadata={"help": "seeds (mean ± std)"})
    out: Path | None = field(
        default=None, metadata={"help": "write results.json, results.md and results.png here"}
    )
    plot: bool = field(default=True, metadata={"help": "write results.png next to the results"})


def bench_cmd(cfg: WINConfig, train: WINTrainConfig, opts: BenchOptions, common: CommonOptions) -> int:
    """WIN and the baselines on a ground-truth suite."""
    from wbar import bench

    rows = bench.run(
        opts.suite,
        opts.dims,
        opts.bases,
        opts.seeds,
        cfg,
        train,
        device=common.torch_device,
        first_seed=common.seed,
    )
    md = bench.table(rows)
    print(md)
    if opts.out:
        write_json(opts.out / "results.json", rows)
        (opts.out / "results.md").write_text(md + "\n")
        write_resolved_config(opts.out, cfg, train, opts, common=common)
        if opts.plot:
            _plot_bench(rows, opts.out / "results.png")
    return 0


def _plot_bench(rows: list[dict], path: Path) -> None:
    """Every seed's error metrics (BW2-UVP, sample W2², FD, L2-UVP) against the dimension."""
    from papercore.plot import pareto

    keys = ("bw2_uvp", "_w2", "fd", "l2_uvp")
    pts = [(r["dim"], v, k) for r in rows for k, v in r.items()
           if any(t in k for t in keys) and "over" not in k and isinstance(v, int | float)]  # fmt: skip
    pareto(path, pts, xlabel="dimension D", ylabel="error (BW2-UVP %, W2², FD or L2-UVP %)",
           maximize_y=False, title=f"wbar bench: {rows[0]['suite']}")  # fmt: skip


def demo(common: CommonOptions) -> int:
    """Three 2-D marginals (Swiss-roll base) with a known barycentre: WIN against the baselines, and a PNG."""
    from papercore.ot.metrics import bw2_uvp, sample_w2
    from papercore.plot import map_2d, samples_2d
    from wbar.baselines import bures_from_samples, free_support
    from wbar.solver import fit
    from wbar.suites import location_scatter

    logging.getLogger("papercore").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="wbar-demo-"))
    prob = location_scatter(2, 3, "swiss_roll", seed=common.seed)
    cfg, train = (
        WINConfig(not_steps=50, generator_steps=50),
        WINTrainConfig(steps=20, batch_size=256, checkpoint_every=0),
    )
    bar = fit(prob.marginals, prob.weights, cfg, train, problem=prob, seed=common.seed, device="cpu")
    g = torch.Generator().manual_seed(1)
    n = 2000
    truth = prob.truth.sample(n, g)
    floor = sample_w2(prob.truth.sample(n, g), truth)
    candidates = {
        "WIN (generator)": bar.sample(32768, g),
        "Bures barycentre of 500-sample moments": bures_from_samples(
            prob.marginals, prob.weights, 500, 32768
        ),
        "POT free support (500 points)": free_support(prob.marginals, prob.weights, n=500),
    }
    rows = {name: {"bw2_uvp": bw2_uvp(x, prob.mean, prob.cov), "w2_over_floor": sample_w2(x[:n], truth) / floor}
            for name, x in candidates.items()}  # fmt: skip
    print(
        f"3 marginals in 2-D (Swiss-roll location-scatter family), WIN {train.steps} outer iterations in {bar.info['seconds']} s"
    )
    print("| barycentre | BW2-UVP (%) | sample W2^2 / noise floor |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['bw2_uvp']:.3f} | {r['w2_over_floor']:.2f} |")
    print(
        "(BW2-UVP compares means and covariances only; W2^2 of 2,000 samples to the true barycentre, over that of two"
    )
    print(" draws of the truth, also sees the shape)")
    clouds = [m.sample(1500, g) for m in prob.marginals] + [
        truth[:1500],
        candidates["WIN (generator)"][:1500],
    ]
    labels = [f"P{k + 1} (alpha {w:.2g})" for k, w in enumerate(prob.weights)] + [
        "true barycentre",
        "WIN G#N(0, I)",
    ]
    samples_2d(out / "barycenter.png", *clouds, labels=labels, title="WIN barycentre of three Swiss rolls")
    y = candidates["WIN (generator)"][:1000]
    for k, T in enumerate(bar.maps):  # the NOT maps from the barycentre to each marginal
        with torch.no_grad():
            Ty = T(y)
        map_2d(out / f"map{k + 1}.png", y, Ty, target=prob.marginals[k].sample(1000, g),
               title=f"WIN map T{k + 1}: barycentre -> P{k + 1}")  # fmt: skip
    bar.save(out / "model")
    write_json(out / "metrics.json", rows)
    print(f"barycenter.png, map1-3.png, metrics.json and the model in {out}")
    return 0


app = CLI(
    "wbar",
    "WIN: continuous Wasserstein-2 barycentres with a generator and neural OT maps.",
    [
        Command(
            "fit",
            fit_cmd,
            "fit the barycentre of --marginals (or a built-in suite)",
            config=(WINConfig, WINTrainConfig),
            options=FitOptions,
        ),
        Command("sample", sample_cmd, "draw samples of a fitted barycentre", options=SampleOptions),
        Command(
            "bench",
            bench_cmd,
            "WIN and the baselines on a ground-truth suite",
            config=(WINConfig, WINTrainConfig),
            options=BenchOptions,
        ),
        Command("demo", demo, "three 2-D marginals with a known barycentre: a PNG and a metrics table"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
