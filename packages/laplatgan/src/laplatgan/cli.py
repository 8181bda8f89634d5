"""``laplatgan`` command line: train, sample, upsample, eval, metrics, demo.

With no data arguments every command runs on the built-in synthetic ``table`` class.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from laplatgan import __version__
from laplatgan.config import LaplatGANConfig, LaplatTrainConfig
from papercore.cli import CLI, Command, CommonOptions, Preset, UserError, check_resume, write_resolved_config
from papercore.geometry.cli import COMMANDS as GEOMETRY
from papercore.io import write_json

log = logging.getLogger(__name__)

PRESETS = {
    "paper": {},
    # a CPU-sized pyramid: narrower encoders, the same levels, code size and GAN shapes
    "cpu": {"encoder": (32, 64, 64, 128)},
    "tiny": {
        "encoder": (16, 32),
        "decoder": (64,),
        "bottleneck": 32,
        "z_dim": 16,
        "gen_hidden": (32,),
        "critic_hidden": (64, 64),
        "levels": (128, 256, 512),
    },  # fmt: skip
}


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass
class TrainOptions:
    data: str = field(
        default="synthetic:table",
        metadata={"help": "synthetic:CLASS, or a folder of PLY/OBJ/STL/OFF/XYZ/NPY clouds or meshes"},
    )
    out: Path = field(
        default=Path("laplatgan-run"),
        metadata={"help": "output folder: model/, per-stage checkpoints, metrics"},
    )
    n_train: int = field(default=400, metadata={"help": "training shapes (synthetic data)"})
    n_val: int = field(default=50, metadata={"help": "validation shapes (synthetic data)"})
    n_test: int = field(default=100, metadata={"help": "test shapes (synthetic data)"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run in --out"})
    plot: bool = field(default=True, metadata={"help": "write curves.png per stage and samples.png"})


def train_cmd(
    cfg: LaplatGANConfig, tcfg: LaplatTrainConfig, opts: TrainOptions, common: CommonOptions
) -> int:
    """Train the autoencoders and GANs of every level."""
    from laplatgan.data import load_data
    from laplatgan.train import fit

    if opts.resume:
        check_resume(opts.out, cfg, tcfg)
    elif (opts.out / "model").exists() or any(opts.out.glob("*/checkpoint")):
        raise UserError(
            f"--out {opts.out} already holds a run: pass --resume to continue it, or a new folder"
        )
    splits = load_data(opts.data, max(cfg.levels), common.seed, opts.n_train, opts.n_val, opts.n_test)
    write_resolved_config(opts.out, cfg, tcfg, opts, common=common)
    t0 = time.perf_counter()
    model = fit(splits, cfg, tcfg, opts.out, common.seed, common.torch_device, opts.resume, opts.plot)
    print(f"trained {len(cfg.levels)} levels {list(cfg.levels)} on {len(splits.train)} clouds ({splits.source}) "
          f"in {time.perf_counter() - t0:.1f} s; model saved to {opts.out / 'model'}")  # fmt: skip
    if opts.plot:
        _grid(model.sample(8, common.seed), opts.out / "samples.png")
        print(f"plot: {opts.out / 'samples.png'}")
    return 0


def _grid(levels: dict, path: Path, per_level: int = 4) -> None:
    from papercore.plot import point_clouds

    clouds, titles = [], []
    for i in range(per_level):
        for n, x in levels.items():
            clouds.append(x[i])
            titles.append(f"#{i} {n} pts")
    point_clouds(path, clouds, titles)


@dataclass
class SampleOptions:
    model: Path = field(
        default=Path("laplatgan-run"), metadata={"help": "folder written by `laplatgan train`"}
    )
    n: int = field(default=16, metadata={"help": "clouds to sample"})
    out: Path = field(
        default=Path("samples"),
        metadata={"help": "folder: level_N/XXX.ply per cloud and a PNG grid per level"},
    )
    format: str = field(default="ply", metadata={"help": "ply, xyz or npy"})
    plot: bool = field(default=True, metadata={"help": "write level_N.png grids"})


def sample_cmd(opts: SampleOptions, common: CommonOptions) -> int:
    """Sample clouds through the whole chain; a file per cloud and a PNG grid per level."""
    from laplatgan.pyramid import LaplatGAN
    from papercore.geometry.io import write_cloud

    if opts.n < 1:
        raise UserError("-n must be >= 1")
    if opts.format not in ("ply", "xyz", "npy"):
        raise UserError(f"--format {opts.format}: choose ply, xyz or npy")
    model = LaplatGAN.load(opts.model, common.torch_device)
    levels = model.sample(opts.n, common.seed)
    for n, x in levels.items():
        for i, c in enumerate(x):
            write_cloud(opts.out / f"level_{n}" / f"{i:04d}.{opts.format}", c)
        if opts.plot:
            from papercore.plot import point_clouds

            k = min(len(x), 16)
            point_clouds(opts.out / f"level_{n}.png", list(x[:k]), [f"{n} pts #{i}" for i in range(k)])
    print(f"sampled {opts.n} clouds at {', '.join(map(str, levels))} points into {opts.out}")
    return 0


@dataclass
class UpsampleOptions:
    model: Path = field(
        default=Path("laplatgan-run"), metadata={"help": "folder written by `laplatgan train`"}
    )
    input: Path | None = field(
        default=None,
        metadata={"help": "low-resolution cloud (or mesh) with a pyramid level's number of points"},
    )
    out: Path = field(default=Path("high.ply"), metadata={"help": "the top-level cloud (.ply, .xyz, .npy)"})
    subsample: bool = field(
        default=False, metadata={"help": "subsample a larger input to the lowest level first"}
    )
    normalize: bool = field(
        default=True,
        metadata={"help": "scale the input into the ball of radius 0.5 (the training frame) and back"},
    )


def upsample_cmd(opts: UpsampleOptions, common: CommonOptions) -> int:
    """Run the pyramid from a given low-resolution cloud up to the top level."""
    from laplatgan.pyramid import LaplatGAN
    from papercore.geometry import normalize_unit_ball
    from papercore.geometry.io import read_cloud, write_cloud

    if opts.input is None:
        raise UserError("--input is required: a cloud with as many points as a lower pyramid level")
    model = LaplatGAN.load(opts.model, common.torch_device)
    x = read_cloud(opts.input, model.levels[0] if opts.subsample else None, seed=common.seed)
    center, scale = torch.zeros(1, 3), torch.ones(1, 1)
    if opts.normalize:
        x, center, scale = normalize_unit_ball(x)
    out = model.upsample(x, common.seed)
    top = out[model.levels[-1]] / scale + center
    write_cloud(opts.out, top)
    print(f"upsampled {len(x)} -> {len(top)} points: {opts.out}")
    return 0


@dataclass
class EvalOptions:
    model: Path = field(
        default=Path("laplatgan-run"), metadata={"help": "folder written by `laplatgan train`"}
    )
    metrics: list[str] = field(
        default_factory=lambda: ["mmd", "cov", "jsd", "1nna"],
        metadata={"help": "mmd cov jsd 1nna (or full names such as mmd-emd)"},
    )
    distance: list[str] = field(
        default_factory=lambda: ["cd"], metadata={"help": "ground distances of mmd/cov/1nna: cd and/or emd"}
    )
    references: Path | None = field(
        default=None,
        metadata={"help": "folder of reference clouds (default: the test split of the training data)"},
    )
    n: int | None = field(
        default=None, metadata={"help": "generated clouds (default: as many as references)"}
    )
    out: Path | None = field(default=None, metadata={"help": "write eval.json (and eval.png) here"})
    plot: bool = field(default=True, metadata={"help": "write a PNG of samples next to eval.json"})


def eval_cmd(opts: EvalOptions, common: CommonOptions) -> int:
    """Score sampled clouds per level against reference clouds."""
    from laplatgan.data import load_data
    from laplatgan.evaluate import per_level, resolve_metrics, table
    from laplatgan.pyramid import LaplatGAN
    from papercore.geometry import normalize_unit_ball
    from papercore.geometry.io import load_folder

    bad = [d for d in opts.distance if d not in ("cd", "emd")]
    if bad:
        raise UserError(f"--distance {' '.join(bad)}: choose cd and/or emd")
    metrics = resolve_metrics([m for s in opts.metrics for m in s.split(",") if m], opts.distance)
    model = LaplatGAN.load(opts.model, common.torch_device)
    top = model.levels[-1]
    if opts.references is not None:
        refs = normalize_unit_ball(load_folder(opts.references, top, seed=common.seed)[0])[0]
    else:
        src = model.meta.get("data", "synthetic:table")
        seed = model.meta.get("seed", common.seed)
        refs = load_data(src, top, seed, n_train=0, n_val=0, n_test=model.meta.get("n_test", 100)).test
    samples = model.sample(opts.n or len(refs), common.seed)
    res = per_level(samples, refs, model.levels, metrics, common.seed, common.torch_device)
    print(table({"laplatgan": res}))
    if opts.out is not None:
        write_json(opts.out / "eval.json", {str(k): v for k, v in res.items()})
        write_resolved_config(opts.out, opts, common=common)
        if opts.plot:
            _grid(samples, opts.out / "eval.png")
        print(f"results: {opts.out / 'eval.json'}")
    return 0


def demo(common: CommonOptions) -> int:
    """A small pyramid on synthetic tables in about a minute; metrics against l-GAN, the GMM and the oracle."""
    from laplatgan.baselines import LGAN, LatentGMM, equal_compute_steps
    from laplatgan.data import synthetic
    from laplatgan.evaluate import per_level, table
    from laplatgan.train import fit

    logging.getLogger("papercore").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="laplatgan-demo-"))
    cfg = LaplatGANConfig(**PRESETS["tiny"], n_critic=5)
    tcfg = LaplatTrainConfig(
        steps=60, ae_steps=100, batch_size=16, eval_every=50, checkpoint_every=0, log_every=20
    )
    t0 = time.perf_counter()
    data = synthetic("table", n_train=64, n_val=16, n_test=24, points=max(cfg.levels), seed=common.seed)
    model = fit(data, cfg, tcfg, out, common.seed, "cpu", plot=False)
    lgan = LGAN(model.aes[-1], cfg)
    lgan.fit(data.train, tcfg, equal_compute_steps(tcfg, len(cfg.levels)), seed=common.seed, plot=False)
    gmm = LatentGMM(model.aes[-1], n_components=8, seed=common.seed).fit(data.train)
    n = len(data.test)
    metrics = ["mmd-cd", "cov-cd", "1nna-cd", "jsd"]
    samples = model.sample(n, common.seed)
    res = {
        "laplatgan": per_level(samples, data.test, cfg.levels, metrics, common.seed),
        "l-gan": per_level(lgan.sample(n, common.seed), data.test, cfg.levels, metrics, common.seed),
        "latent gmm": per_level(gmm.sample(n, common.seed), data.test, cfg.levels, metrics, common.seed),
        "oracle (real)": per_level(data.test2, data.test, cfg.levels, metrics, common.seed),
    }
    print(f"synthetic tables, levels {list(cfg.levels)}, {len(data.train)} training shapes, trained in "
          f"{time.perf_counter() - t0:.0f} s (a tiny CPU run: read it as a smoke test, not as quality):")  # fmt: skip
    print(table(res, 3))
    _grid(samples, out / "samples.png")
    write_json(out / "metrics.json", {m: {str(k): v for k, v in r.items()} for m, r in res.items()})
    print(f"samples.png, metrics.json and the model in {out}")
    return 0


app = CLI(
    "laplatgan",
    "LaplatGAN: latent-space Laplacian pyramid GANs for point clouds (512 -> 1024 -> 2048 points).",
    [
        Command(
            "train",
            train_cmd,
            "train the autoencoders and GANs of every level",
            config=(LaplatGANConfig, LaplatTrainConfig),
            options=TrainOptions,
            preset=Preset("preset", _preset, "paper (default), cpu or tiny", "paper"),
        ),  # fmt: skip
        Command(
            "sample",
            sample_cmd,
            "sample clouds through the chain (a file per cloud, a PNG per level)",
            options=SampleOptions,
        ),
        Command(
            "upsample",
            upsample_cmd,
            "upsample a given low-resolution cloud to the top level",
            options=UpsampleOptions,
        ),
        Command("eval", eval_cmd, "score samples per level (MMD, COV, JSD, 1-NNA)", options=EvalOptions),
        Command(
            "metrics",
            GEOMETRY[0].run,
            GEOMETRY[0].help,
            options=GEOMETRY[0].options,
            add_arguments=GEOMETRY[0].add_arguments,
        ),
        Command("demo", demo, "train a tiny pyramid on synthetic tables and print a metrics table"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
