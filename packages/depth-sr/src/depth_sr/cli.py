"""``depth-sr`` command line: upsample, train, eval, dip, demo.

With no data arguments every command runs on built-in synthetic scenes; ``upsample`` without
``--model`` uses the built-in MSG-V model of its scale (trained on first use, then cached).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from depth_sr import __version__
from depth_sr.config import DIPConfig, DSRTrainConfig, MSGConfig, SceneConfig
from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import write_json

log = logging.getLogger(__name__)


def _table(rows: dict[str, dict[str, float]]) -> str:
    from depth_sr.metrics import METRICS

    head = "| method | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4g}" for k in METRICS) + " |")
    return "\n".join(lines)


def _inputs(depth: Path | None, rgb: Path | None, depth_scale: float | None, intrinsics: str, kind: str):
    from depth_sr.camera import KINDS, Intrinsics, valid_mask
    from depth_sr.io import read_depth, read_rgb

    if depth is None or rgb is None:
        raise UserError("give both --depth (16-bit PNG, EXR or NPY) and --rgb (the HR colour image)")
    if kind not in KINDS:
        raise UserError(f"--kind {kind}: choose from {', '.join(KINDS)}")
    d, c = read_depth(depth, depth_scale), read_rgb(rgb)
    if not bool(valid_mask(d).any()):
        raise UserError(f"{depth}: every pixel is a hole (0, NaN or negative): nothing to upsample")
    H, W = c.shape[-2:]
    K = Intrinsics.parse(intrinsics) if intrinsics else Intrinsics.default(H, W)
    return d, c, K


def _scale_of(d: torch.Tensor, c: torch.Tensor, scale: int | None) -> int:
    h, w = d.shape[-2:]
    H, W = c.shape[-2:]
    s = scale or W // w
    if h * s != H or w * s != W:
        raise UserError(
            f"the depth ({h}x{w}) times the scale {s} must equal the RGB size ({H}x{W}): "
            "resize or crop one of them, or give the right --scale"
        )
    return s


@dataclass
class UpsampleOptions:
    depth: Path | None = field(default=None, metadata={"help": "LR depth: 16-bit PNG, EXR or NPY"})
    rgb: Path | None = field(default=None, metadata={"help": "the HR RGB image (scale x the depth's size)"})
    scale: int = field(default=4, metadata={"help": "upsampling factor (2, 4, 8, 16)"})
    out: Path = field(default=Path("hr.png"), metadata={"help": "HR depth: .png (16-bit), .exr or .npy"})
    model: Path | None = field(
        default=None, metadata={"help": "a `depth-sr train` folder (default: built-in MSG-V)"}
    )
    intrinsics: str = field(default="", metadata={"help": "fx,fy,cx,cy of the HR (RGB) camera, in pixels"})
    depth_scale: float | None = field(
        default=None, metadata={"help": "units per PNG/NPY integer step (PNG default 0.001: millimetres)"}
    )
    kind: str = field(default="perspective", metadata={"help": "perspective, orthographic or disparity"})
    plot: bool = field(default=True, metadata={"help": "write OUT_compare.png: input, bicubic and ours"})


def upsample_cmd(opts: UpsampleOptions, common: CommonOptions) -> int:
    """Upsample one real or synthetic LR depth map guided by its RGB image."""
    from depth_sr.baselines import bicubic
    from depth_sr.config import SCALES
    from depth_sr.io import write_depth
    from depth_sr.train import load_model, pretrained

    d, c, K = _inputs(opts.depth, opts.rgb, opts.depth_scale, opts.intrinsics, opts.kind)
    if opts.scale not in SCALES:
        raise UserError(f"--scale {opts.scale}: choose from {', '.join(map(str, SCALES))}")
    s = _scale_of(d, c, opts.scale)
    model = load_model(opts.model) if opts.model is not None else pretrained(s)
    if model.config.scale != s:
        raise UserError(f"the model in {opts.model} was trained for x{model.config.scale}, not x{s}: "
                        f"train one with `depth-sr train --scale {s}` or use --scale {model.config.scale}")  # fmt: skip
    t0 = time.perf_counter()
    hr = model.upsample(d[None, None], c[None])[0, 0]
    write_depth(opts.out, hr, opts.depth_scale)
    valid = torch.isfinite(hr)
    print(f"x{s}: {d.shape[-2]}x{d.shape[-1]} -> {hr.shape[-2]}x{hr.shape[-1]} in {time.perf_counter() - t0:.2f} s; "
          f"{100 * valid.float().mean():.1f}% valid (holes stay holes): {opts.out}")  # fmt: skip
    if opts.plot:
        from depth_sr.figures import compare

        png = opts.out.with_name(opts.out.stem + "_compare.png")
        compare(png, {"input": d, "bicubic": bicubic(d[None, None], c[None])[0, 0], "ours": hr}, K)
        print(f"plot: {png}")
    return 0


@dataclass
class TrainOptions:
    data: str = field(default="synthetic", metadata={"help": "training data: synthetic (ray-cast scenes)"})
    out: Path = field(
        default=Path("depth-sr-run"), metadata={"help": "output folder: model/, checkpoint, metrics"}
    )
    n_train: int = field(default=200, metadata={"help": "training scenes"})
    n_val: int = field(default=16, metadata={"help": "validation scenes (keep-best)"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run in --out"})
    plot: bool = field(default=True, metadata={"help": "write curves.png and val.png"})


def train_cmd(
    msg: MSGConfig, tcfg: DSRTrainConfig, scene: SceneConfig, opts: TrainOptions, common: CommonOptions
) -> int:
    """Train MSG-Net with L2, MSE_v or both (MSG-V) on synthetic scenes."""
    from depth_sr.train import fit, scene_splits

    if opts.data != "synthetic":
        raise UserError(
            f"--data {opts.data}: only 'synthetic' is built in (use the Python API for your own scenes)"
        )
    if tcfg.crop % msg.scale or tcfg.crop > scene.size:
        raise UserError(
            f"--crop {tcfg.crop} must be a multiple of --scale {msg.scale} and <= --size {scene.size}"
        )
    if opts.n_train < 1 or opts.n_val < 0:
        raise UserError("--n-train must be >= 1 and --n-val >= 0")
    if opts.resume:
        check_resume(opts.out, msg, tcfg, scene)
    elif (opts.out / "model").exists() or (opts.out / "checkpoint").exists():
        raise UserError(
            f"--out {opts.out} already holds a run: pass --resume to continue it, or a new folder"
        )
    train_s, val_s, _ = scene_splits(scene, opts.n_train, opts.n_val, 0, seed=common.seed)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun / accelerate launch: rank 0 writes
    if main_rank:
        write_resolved_config(opts.out, msg, tcfg, scene, opts, common=common)
    t0 = time.perf_counter()
    device = "cpu" if common.torch_device.type == "cpu" else "auto"
    fit(msg, tcfg, train_s, val_s or None, noise=scene.noise, out=opts.out, seed=common.seed, device=device,
        resume=opts.resume, plot=opts.plot)  # fmt: skip
    if not main_rank:
        return 0
    write_json(opts.out / "model" / "scene.json", {"scene": scene.to_dict(), "seed": common.seed})
    print(f"trained MSG x{msg.scale} ({tcfg.loss}) for {tcfg.steps} steps on {opts.n_train} scenes in "
          f"{time.perf_counter() - t0:.0f} s: {opts.out / 'model'}")  # fmt: skip
    return 0


@dataclass
class EvalOptions:
    model: Path = field(default=Path("depth-sr-run"), metadata={"help": "folder written by `depth-sr train`"})
    n_test: int = field(default=16, metadata={"help": "synthetic test scenes (disjoint from training)"})
    band: int = field(
        default=2, metadata={"help": "pixels around discontinuities left out of rmse_nb/angles"}
    )
    delta: float = field(default=0.02, metadata={"help": "BadPix threshold on the relative depth error"})
    out: Path | None = field(default=None, metadata={"help": "write eval.json and eval.png here"})
    plot: bool = field(default=True, metadata={"help": "write eval.png (the first test scene)"})


def evaluate_methods(model, scenes, noise: float = 0.0, band: int = 2, delta: float = 0.02, seed: int = 0):
    """Metrics of the model and the classical baselines on the same scenes; also the first scene's maps."""
    from depth_sr.baselines import BASELINES
    from depth_sr.metrics import evaluate, mean_metrics
    from depth_sr.train import full_batch

    lr, rgb, hr, K = full_batch(scenes, model.config.scale, noise, seed)
    rows, first = {}, {}
    with torch.no_grad():
        preds = {name: f(lr, rgb) for name, f in BASELINES.items()}
        preds["msg"] = model.upsample(lr, rgb)
    for name, p in preds.items():
        rows[name] = mean_metrics(evaluate(p, hr, K, band=band, delta=delta))
        first[name] = p[0, 0]
    return rows, {"input": lr[0, 0], "bicubic": first["bicubic"], "ours": first["msg"], "truth": hr[0, 0]}


def eval_cmd(opts: EvalOptions, common: CommonOptions) -> int:
    """Depth RMSE (with and without the discontinuity band), MSE_v, normal angles, render SSIM, BadPix."""
    from depth_sr.train import load_model, scene_splits

    model = load_model(opts.model)
    meta = model.meta
    scene = (
        SceneConfig.from_dict(meta.get("scene", SceneConfig().to_dict()))
        if "scene" in meta
        else SceneConfig()
    )
    sj = Path(opts.model) / "model" / "scene.json"
    if sj.is_file():
        from papercore.io import read_json

        scene = SceneConfig.from_dict(read_json(sj)["scene"])
    if opts.n_test < 1:
        raise UserError("--n-test must be >= 1")
    _, _, test = scene_splits(scene, 0, 0, opts.n_test, seed=common.seed)
    rows, maps = evaluate_methods(model, test, scene.noise, opts.band, opts.delta, common.seed)
    print(_table(rows))
    if opts.out is not None:
        write_json(opts.out / "eval.json", rows)
        write_resolved_config(opts.out, opts, common=common)
        if opts.plot:
            from depth_sr.figures import compare

            compare(opts.out / "eval.png", maps, test[0].K)
        print(f"results: {opts.out / 'eval.json'}")
    return 0


@dataclass
class DIPOptions:
    depth: Path | None = field(default=None, metadata={"help": "LR depth: 16-bit PNG, EXR or NPY"})
    rgb: Path | None = field(
        default=None, metadata={"help": "the HR RGB image (an integer multiple of the depth)"}
    )
    out: Path = field(default=Path("hr.png"), metadata={"help": "HR depth: .png (16-bit), .exr or .npy"})
    intrinsics: str = field(default="", metadata={"help": "fx,fy,cx,cy of the HR (RGB) camera, in pixels"})
    depth_scale: float | None = field(default=None, metadata={"help": "units per PNG/NPY integer step"})
    kind: str = field(default="perspective", metadata={"help": "perspective, orthographic or disparity"})
    plot: bool = field(default=True, metadata={"help": "write OUT_compare.png"})


def dip_cmd(cfg: DIPConfig, opts: DIPOptions, common: CommonOptions) -> int:
    """DIP-V: optimise a deep image prior on one image with the visual loss (no training data)."""
    from depth_sr.baselines import bicubic
    from depth_sr.dip import dip_v
    from depth_sr.io import write_depth

    d, c, K = _inputs(opts.depth, opts.rgb, opts.depth_scale, opts.intrinsics, opts.kind)
    s = _scale_of(d, c, None)
    t0 = time.perf_counter()
    hr = dip_v(d, c, K.scaled(1 / s), cfg, seed=common.seed, progress=True)[0, 0]
    write_depth(opts.out, hr, opts.depth_scale)
    print(f"DIP-V x{s}, {cfg.steps} steps in {time.perf_counter() - t0:.1f} s: {opts.out}")
    if opts.plot:
        from depth_sr.figures import compare

        png = opts.out.with_name(opts.out.stem + "_compare.png")
        compare(png, {"input": d, "bicubic": bicubic(d[None, None], c[None])[0, 0], "DIP-V": hr}, K)
        print(f"plot: {png}")
    return 0


def demo(common: CommonOptions) -> int:
    """Train a small MSG-V x4 on synthetic scenes for a minute, compare with the baselines, write a PNG."""
    from depth_sr.figures import compare
    from depth_sr.train import fit, scene_splits

    logging.getLogger("papercore").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="depth-sr-demo-"))
    t0 = time.perf_counter()
    scene = SceneConfig(size=64)
    train_s, _, test = scene_splits(scene, 48, 0, 8, seed=common.seed)
    msg = MSGConfig(scale=4, width=16, y_channels=16, depth_channels=32)
    tcfg = DSRTrainConfig(steps=250, batch_size=8, crop=32, loss="mix", eval_every=0, checkpoint_every=0)
    model = fit(msg, tcfg, train_s, None, seed=common.seed, plot=False)
    rows, maps = evaluate_methods(model, test)
    rows = {("MSG-V (demo)" if k == "msg" else k): v for k, v in rows.items()}
    print(f"x4 on {len(test)} synthetic 64x64 test scenes, a small MSG-V trained for {tcfg.steps} steps "
          f"({time.perf_counter() - t0:.0f} s; a smoke test, see the README for the measured results):")  # fmt: skip
    print(_table(rows))
    compare(out / "demo.png", maps, test[0].K)
    write_json(out / "metrics.json", rows)
    print(f"demo.png and metrics.json in {out}")
    return 0


app = CLI(
    "depth-sr",
    "Perceptual depth super-resolution: MSG-V, DIP-V and the visual loss MSE_v.",
    [
        Command(
            "upsample",
            upsample_cmd,
            "upsample an LR depth map guided by its RGB image",
            options=UpsampleOptions,
        ),
        Command(
            "train",
            train_cmd,
            "train MSG-Net (l2, msev or mix) on synthetic scenes",
            config=(MSGConfig, DSRTrainConfig, SceneConfig),
            options=TrainOptions,
        ),  # fmt: skip
        Command(
            "eval", eval_cmd, "score a model and the baselines on synthetic test scenes", options=EvalOptions
        ),
        Command(
            "dip", dip_cmd, "DIP-V on one image (no training data)", config=DIPConfig, options=DIPOptions
        ),
        Command("demo", demo, "train a small MSG-V, compare with the baselines, write a PNG"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
