"""Held-out evaluation: field metrics per noise level (model vs PCA baseline), curve metrics on whole shapes."""

from __future__ import annotations

import numpy as np
import torch

from def3d.baselines import PCABaseline
from def3d.config import CurveConfig, DataConfig
from def3d.curves import extract_curves
from def3d.metrics import curve_metrics, field_metrics, true_corners
from def3d.train import TEST_SEED, DEFModel, predict_batch

__all__ = ["evaluate_curves", "evaluate_fields", "fit_pca_baseline"]


def fit_pca_baseline(data_cfg: DataConfig, patches: int = 16, seed: int = 0) -> PCABaseline:
    """The PCA baseline with its threshold chosen on training patches (never test ones)."""
    from def3d.data import load_or_make

    tr = load_or_make("points", data_cfg, patches, seed * 100_000)
    return PCABaseline(k=16, upper=1.0).fit(tr["points"], tr["distances"])


def evaluate_fields(model: DEFModel | None, data_cfg: DataConfig, noise=(0.0, 0.25, 1.0), patches: int = 32,
                    baseline: PCABaseline | None = None, kind: str = "points") -> list[dict]:  # fmt: skip
    """One row per (method, noise level): DEF's patch metrics on patches of held-out shapes."""
    from def3d.data import load_or_make

    rows = []
    for s in noise:
        cfg = DataConfig.from_dict({**data_cfg.to_dict(), "noise": str(s)})
        te = load_or_make(kind, cfg, patches, TEST_SEED)
        key = "points" if kind == "points" else "inputs"
        target = te["distances"]
        if kind == "image":  # foreground pixels only
            target = torch.where(te["mask"], target, torch.nan).flatten(1)
        if model is not None:
            pred = torch.cat(
                [predict_batch(model, te[key][i : i + 8]) for i in range(0, len(te[key]), 8)]
            ).flatten(1)
            rows.append(
                {
                    "method": f"DEF-{kind}-{model.model_cfg.head}",
                    "sigma_r": s,
                    **field_metrics(pred, target, cfg.resolution, cfg.upper),
                }
            )
        if baseline is not None and kind == "points":
            pred = baseline.predict(te["points"])
            rows.append(
                {
                    "method": "PCA baseline",
                    "sigma_r": s,
                    **field_metrics(pred, target, cfg.resolution, cfg.upper),
                }
            )
    return rows


def evaluate_curves(model: DEFModel | None, data_cfg: DataConfig, shapes: int = 3, curve_cfg: CurveConfig | None = None,
                    families=("box", "L", "stepped")) -> list[dict]:  # fmt: skip
    """Curves extracted from the model's fused field (and from the true field) on whole held-out shapes."""
    from def3d.data import scaled_shape, shape_cloud
    from def3d.pipeline import predict_cloud

    rows = []
    r = data_cfg.resolution
    for i in range(shapes):
        seed = TEST_SEED + i
        shape = scaled_shape(families[i % len(families)], seed)
        p, _, _, d = shape_cloud(shape, data_cfg, torch.Generator().manual_seed(seed))
        tc = true_corners(shape.edges)
        c = extract_curves(p.numpy(), d.numpy() * data_cfg.upper, r, curve_cfg)
        rows.append(
            {
                "method": "true field",
                "shape": shape.name,
                **curve_metrics(c.polylines, c.corners, shape.edges, tc, r / 2),
            }
        )
        if model is not None:
            pred = predict_cloud(model, p.numpy(), r, curves=curve_cfg)
            rows.append({"method": f"DEF-points-{model.model_cfg.head}", "shape": shape.name,
                         "field_rmse": float(np.sqrt(np.mean((pred.distances / data_cfg.upper - d.numpy()) ** 2))),
                         **curve_metrics(pred.curves.polylines, pred.curves.corners, shape.edges, tc, r / 2)})  # fmt: skip
    for row in rows:
        for k in ("hausdorff", "chamfer"):
            row[k + "_r"] = row.pop(k) / r
    return rows
