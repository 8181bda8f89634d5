"""``def3d`` command line: predict distance fields and curves on meshes and clouds, train, eval, demo.

With no data arguments every command runs on built-in data: ``def3d predict`` on a synthetic CAD
part, ``def3d train`` on synthetic patches, ``def3d eval`` on held-out synthetic shapes.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from def3d import __version__
from def3d.config import PRESETS, CurveConfig, DataConfig, DEF3DTrainConfig, ModelConfig
from papercore.cli import CLI, Command, CommonOptions, Preset, UserError, check_resume, write_resolved_config
from papercore.io import write_json

log = logging.getLogger(__name__)


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "\n".join("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows)


# ---------------------------------------------------------------------- predict
@dataclass
class PredictOptions:
    model: Path | None = field(
        default=None,
        metadata={
            "help": "a folder written by `def3d train` (default: the built-in model, trained once and cached)"
        },
    )
    out: Path = field(
        default=Path("def3d-predict"),
        metadata={"help": "output folder: distances.ply, curves.obj, curves.json, preview.png"},
    )
    resolution: float = field(
        default=0.0,
        metadata={
            "help": "sampling resolution r in the input's units (0: from the mesh area or the cloud spacing)"
        },
    )
    combiner: str = field(
        default="min", metadata={"help": "fusion of overlapping patches: min, adv60, mean, median"}
    )
    oracle: bool = field(
        default=True, metadata={"help": "for a mesh, also score the curves against its dihedral-angle edges"}
    )
    plot: bool = field(default=True, metadata={"help": "write preview.png"})


def _input_arg(p):
    p.add_argument("input", nargs="?", type=Path, default=None,
                   help="mesh or cloud: .ply .obj .stl .off .xyz .npy (default: a synthetic CAD part)")  # fmt: skip


def predict_cmd(curves: CurveConfig, opts: PredictOptions, common: CommonOptions, input: Path | None) -> int:
    """Per-point distances to sharp features and feature curves for a mesh or cloud."""
    from def3d.baselines import dihedral_edges
    from def3d.metrics import curve_metrics
    from def3d.pipeline import load_input, predict_cloud, write_prediction
    from def3d.train import load_model
    from def3d.zoo import builtin_model

    if opts.resolution < 0:
        raise UserError("--resolution must be >= 0")
    model = load_model(opts.model) if opts.model else builtin_model()
    if model.model_cfg.model != "points":
        raise UserError(f"{opts.model}: predict runs point models (DEF-Points); this one takes range images")
    if input is None:
        from def3d.data import scaled_shape, shape_cloud

        dcfg = DataConfig.from_dict({**model.data_cfg.to_dict(), "noise": "0"})
        p, _, _, _ = shape_cloud(
            scaled_shape("stepped", 7), dcfg, __import__("torch").Generator().manual_seed(0)
        )
        points, r, mesh = p.numpy(), dcfg.resolution, None
        print("no INPUT: using a synthetic stepped prism")
    else:
        points, r, mesh = load_input(input, opts.resolution or None, seed=common.seed)
    pred = predict_cloud(model, points, r, combiner=opts.combiner, curves=curves)
    upper = model.data_cfg.upper * pred.resolution / model.data_cfg.resolution  # in the input's units
    files = write_prediction(pred, opts.out, upper, plot=opts.plot)
    summary = {
        "points": len(points),
        "resolution": r,
        "curves": len(pred.curves.polylines),
        "corners": len(pred.curves.corners),
        "files": files,
    }
    if mesh is not None and opts.oracle:
        edges = dihedral_edges(*mesh)
        if edges:
            m = curve_metrics(pred.curves.polylines, pred.curves.corners, edges, [], r / 2)
            summary["vs_dihedral_edges"] = {
                "hausdorff_r": m["hausdorff"] / r,
                "chamfer_r": m["chamfer"] / r,
                "dihedral_edges": len(edges),
            }
    write_json(opts.out / "summary.json", summary)
    write_resolved_config(opts.out, curves, opts, common=common)
    print(
        f"{len(points)} points at r = {r:.4g}: {summary['curves']} curves, {summary['corners']} corners -> {opts.out}"
    )
    if "vs_dihedral_edges" in summary:
        v = summary["vs_dihedral_edges"]
        print(
            f"vs the mesh's {v['dihedral_edges']} dihedral-angle edges: Hausdorff {v['hausdorff_r']:.2f} r, Chamfer {v['chamfer_r']:.2f} r"
        )
    return 0


# ---------------------------------------------------------------------- train
@dataclass
class TrainOptions:
    data: str = field(
        default="synthetic",
        metadata={"help": "training data (synthetic: generated CAD shapes with exact ground truth)"},
    )
    out: Path = field(
        default=Path("def3d-run"),
        metadata={"help": "output folder: model/, checkpoints, metrics.jsonl, curves.png"},
    )
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run in --out"})
    plot: bool = field(default=True, metadata={"help": "write curves.png"})


def train_cmd(
    mcfg: ModelConfig, dcfg: DataConfig, tcfg: DEF3DTrainConfig, opts: TrainOptions, common: CommonOptions
) -> int:
    """Train DEF-Points (DGCNN) or DEF-Image (ResNet-UNet) on synthetic patches."""
    from def3d.train import train

    if opts.data != "synthetic":
        raise UserError(
            f"--data {opts.data!r}: only 'synthetic' is built in (generated CAD shapes with exact ground truth)"
        )
    if opts.resume:
        check_resume(opts.out, mcfg, dcfg, tcfg)
    elif (opts.out / "checkpoint").exists():
        raise UserError(
            f"--out {opts.out} already holds a run: pass --resume to continue it, or a new folder"
        )
    write_resolved_config(opts.out, mcfg, dcfg, tcfg, opts, common=common)
    m = train(
        mcfg,
        dcfg,
        tcfg,
        out=opts.out,
        seed=common.seed,
        resume=opts.resume,
        device=str(common.device),
        plot=opts.plot,
    )
    print(f"trained {mcfg.model}/{mcfg.head} for {m.info['steps']} steps in {m.info['seconds']} s; "
          f"best validation RMSE {m.info['best_val_rmse']}; model in {opts.out / 'model'}")  # fmt: skip
    return 0


# ---------------------------------------------------------------------- eval
@dataclass
class EvalOptions:
    model: Path | None = field(
        default=None, metadata={"help": "a folder written by `def3d train` (default: the built-in model)"}
    )
    out: Path = field(
        default=Path("def3d-eval"), metadata={"help": "output folder: results.json, results.md, results.png"}
    )
    patches: int = field(default=32, metadata={"help": "test patches per noise level (held-out shapes)"})
    noise: str = field(default="0,0.25,1", metadata={"help": "noise levels sigma / r"})
    shapes: int = field(default=3, metadata={"help": "whole held-out shapes for the curve metrics (0: none)"})
    baseline: bool = field(default=True, metadata={"help": "score the PCA baseline on the same patches"})
    plot: bool = field(default=True, metadata={"help": "write results.png"})


def eval_cmd(curves: CurveConfig, opts: EvalOptions, common: CommonOptions) -> int:
    """mRMSE, q95RMSE, mRecall/mFPR at 1r and 4r per noise level; curve Hausdorff/Chamfer and count errors."""
    from def3d.evaluate import evaluate_curves, evaluate_fields, fit_pca_baseline
    from def3d.train import load_model
    from def3d.zoo import builtin_model

    try:
        noise = [float(s) for s in opts.noise.split(",")]
    except ValueError:
        raise UserError(f"--noise {opts.noise!r}: comma-separated numbers") from None
    if opts.patches < 1 or opts.shapes < 0:
        raise UserError("--patches must be >= 1 and --shapes >= 0")
    model = load_model(opts.model) if opts.model else builtin_model()
    kind = model.model_cfg.model
    base = fit_pca_baseline(model.data_cfg) if (opts.baseline and kind == "points") else None
    rows = evaluate_fields(model, model.data_cfg, noise, opts.patches, base, kind)
    crow = (
        evaluate_curves(model, model.data_cfg, opts.shapes, curves)
        if (opts.shapes and kind == "points")
        else []
    )
    cols = ["method", "sigma_r", "mRMSE", "q95RMSE", "mRecall@1r", "mFPR@1r", "mRecall@4r", "mFPR@4r"]
    md = _table(rows, cols)
    if crow:
        md += "\n\n" + _table(
            crow,
            [
                "method",
                "shape",
                "hausdorff_r",
                "chamfer_r",
                "n_edges",
                "edge_error",
                "n_corners",
                "corner_error",
            ],
        )
    print(md)
    opts.out.mkdir(parents=True, exist_ok=True)
    write_json(opts.out / "results.json", {"fields": rows, "curves": crow})
    (opts.out / "results.md").write_text(md + "\n")
    write_resolved_config(opts.out, curves, opts, common=common)
    if opts.plot:
        from papercore.plot import pareto

        pts = [(r["sigma_r"], r["mRMSE"], r["method"]) for r in rows]
        pareto(
            opts.out / "results.png",
            pts,
            xlabel="noise sigma / r",
            ylabel="mRMSE",
            maximize_y=False,
            title="def3d: held-out patches",
        )
    print(f"results: {opts.out / 'results.json'}")
    return 0


# ---------------------------------------------------------------------- demo
def demo(common: CommonOptions) -> int:
    """Train a tiny DGCNN for ~30 s, compare it with the PCA baseline, extract curves on a held-out part."""
    import torch

    from def3d.baselines import PCABaseline
    from def3d.data import make_patches
    from def3d.evaluate import evaluate_curves, evaluate_fields
    from def3d.train import train

    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = Path(tempfile.mkdtemp(prefix="def3d-demo-"))
    d = DataConfig(patch_points=512, noise="0")
    m = ModelConfig(depth=2, width=24, k=12, mlp=64)
    t = DEF3DTrainConfig(
        steps=120,
        batch_size=8,
        train_patches=64,
        val_patches=8,
        eval_every=60,
        checkpoint_every=0,
        log_every=20,
    )
    tr, va = make_patches(d, 64, 0), make_patches(d, 8, 10_000_000)
    model = train(m, d, t, out=out / "run", seed=common.seed, device="cpu", plot=False, data=(tr, va))
    base = PCABaseline(k=16).fit(tr["points"][:16], tr["distances"][:16])
    rows = evaluate_fields(model, d, (0.0,), 16, base)
    print(_table(rows, ["method", "mRMSE", "q95RMSE", "mRecall@1r", "mFPR@1r", "mRecall@4r", "mFPR@4r"]))
    crow = evaluate_curves(None, DataConfig(), 1, families=("L",))
    print(
        _table(
            crow,
            [
                "method",
                "shape",
                "hausdorff_r",
                "chamfer_r",
                "n_edges",
                "edge_error",
                "n_corners",
                "corner_error",
            ],
        )
    )
    from def3d.curves import extract_curves
    from def3d.data import scaled_shape, shape_cloud
    from def3d.pipeline import Prediction, preview

    sh = scaled_shape("L", 20_000_000)
    p, _, _, dd = shape_cloud(sh, DataConfig(), torch.Generator().manual_seed(0))
    c = extract_curves(p.numpy(), dd.numpy(), 0.05)
    png = preview(Prediction(p.numpy(), dd.numpy(), c, 0.05), out / "demo.png", 1.0)
    print(
        f"(the demo's model trains for {t.steps} steps; `def3d predict` uses the built-in model)\nplot: {png}"
    )
    return 0


app = CLI(
    "def3d",
    f"def3d {__version__}: distance-to-sharp-feature fields and feature curves for point clouds and meshes (DEF, SIGGRAPH 2022).",
    [
        Command("predict", predict_cmd, "distances and curves for a mesh or cloud", config=CurveConfig,
                options=PredictOptions, add_arguments=_input_arg),
        Command("train", train_cmd, "train a DEF network on synthetic patches", config=(ModelConfig, DataConfig, DEF3DTrainConfig),
                options=TrainOptions, preset=Preset("preset", _preset, "network preset: " + ", ".join(PRESETS))),
        Command("eval", eval_cmd, "held-out metrics of a trained model against the PCA baseline", config=CurveConfig, options=EvalOptions),
        Command("demo", demo, "train a tiny model, compare with the baseline, extract curves"),
    ],
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
