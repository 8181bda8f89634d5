"""Training DEF networks on synthetic patches with :class:`papercore.train.Trainer`, saving and loading them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from def3d.baselines import surface_variation
from def3d.config import DataConfig, DEF3DTrainConfig, ModelConfig
from def3d.models import build_model

__all__ = ["DEFModel", "load_model", "predict_batch", "save_model", "train"]

VAL_SEED = 10_000_000  # validation shapes: seeds far from the training ones
TEST_SEED = 20_000_000


@dataclass
class DEFModel:
    """A trained network with its head and the configs that made it (``net`` in eval mode)."""

    net: torch.nn.Module
    head: object
    model_cfg: ModelConfig
    data_cfg: DataConfig
    info: dict


def _inputs(points: torch.Tensor, cfg: ModelConfig, data: DataConfig) -> torch.Tensor:
    """Network input: patch coordinates in units of the patch radius sqrt(N)/2 * r (scale is kept), [+ PCA channel]."""
    x = points / (math.sqrt(data.patch_points) * 0.5 * data.resolution)
    if cfg.pca_channel:
        x = torch.cat([x, 3 * surface_variation(points, 16)[..., None]], -1)
    return x


def predict_batch(model: DEFModel, batch: torch.Tensor) -> torch.Tensor:
    """Predicted fields in [0, 1]: point patches ``[B, N, 3]`` (centred) or range-image inputs ``[B, 2, H, W]``."""
    model.net.eval()
    dev = next(model.net.parameters()).device
    with torch.no_grad():
        x = batch.to(dev)
        if model.model_cfg.model == "points":
            x = _inputs(x, model.model_cfg, model.data_cfg)
        return model.head.decode(model.net(x)).cpu()


def _random_rotation_batch(n: int, g: torch.Generator) -> torch.Tensor:
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], 1).reshape(n, 3, 3)  # fmt: skip


def train(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: DEF3DTrainConfig, *, out=None, seed: int = 0,
          resume: bool = False, device: str = "auto", plot: bool = True, data=None) -> DEFModel:  # fmt: skip
    """Train a DEF network on cached synthetic patches (random rotations for point patches).

    ``data``: optional ``(train, val)`` dicts of :func:`def3d.data.make_patches` / ``make_images`` to
    use instead of generating them. Validation RMSE on shapes disjoint from training keeps the best weights.
    """
    from def3d.data import load_or_make
    from papercore.train import Trainer

    kind = model_cfg.model
    if data is None:
        tr = load_or_make(kind, data_cfg, train_cfg.train_patches, seed * 100_000)
        va = load_or_make(kind, data_cfg, train_cfg.val_patches, VAL_SEED)
    else:
        tr, va = data
    torch.manual_seed(seed)
    net, head = build_model(model_cfg)
    opt = torch.optim.Adam(net.parameters(), lr=train_cfg.lr)
    gamma = train_cfg.decay ** (1 / max(train_cfg.steps, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    trainer = Trainer({"net": net}, {"net": opt}, train_cfg, out=out, seed=seed, resume=resume,
                      schedulers={"net": sched}, device=device)  # fmt: skip
    key = "points" if kind == "points" else "inputs"
    n_train = len(tr[key])
    model = DEFModel(net, head, model_cfg, data_cfg, {})

    def step(t, _):
        g = t.generator
        idx = torch.randint(n_train, (t.config.batch_size,), generator=g)
        x, d = tr[key][idx].to(t.device), tr["distances"][idx].to(t.device)
        if kind == "points":
            R = _random_rotation_batch(len(idx), g).to(t.device)
            x = _inputs(x @ R.transpose(1, 2), model_cfg, data_cfg)
        else:
            flips = torch.randint(4, (1,), generator=g).item()  # a random rotation by 90 degrees
            x, d = torch.rot90(x, flips, (-2, -1)), torch.rot90(d, flips, (-2, -1))
        loss = head.loss(t.models["net"](x), d)
        t.optimize("net", loss)
        sched.step()
        return {"loss": loss}

    def val_fn(t):
        model.net = t.unwrap("net")
        pred = torch.cat([predict_batch(model, va[key][i : i + 8]) for i in range(0, len(va[key]), 8)])
        rmse = (pred - va["distances"]).pow(2).flatten(1).mean(1).sqrt().mean()
        return {"val_rmse": float(rmse)}

    result = trainer.fit(step, None, val_fn=val_fn, monitor="val_rmse", plot=plot)
    net = trainer.unwrap("net").cpu().eval()
    model = DEFModel(net, head, model_cfg, data_cfg,
                     {"steps": result.step, "seconds": round(result.seconds, 1), "best_val_rmse": result.best_value,
                      "spacing": _median_spacing(tr, kind, data_cfg)})  # fmt: skip
    if out is not None:
        save_model(model, Path(out) / "model")
    return model


def _median_spacing(tr, kind: str, data_cfg: DataConfig) -> float:
    """Median nearest-neighbour distance of the training clouds (how predict rescales users' clouds)."""
    if kind != "points":
        return data_cfg.resolution
    from papercore.geometry import knn

    d, _ = knn(tr["points"][:4], tr["points"][:4], 2, backend="torch")
    return float(d[..., 1].sqrt().median())


def save_model(model: DEFModel, folder) -> Path:
    """``model.safetensors`` + ``model.json`` (configs and info) in ``folder``, atomically."""
    from papercore.io import atomic_dir, save_tensors, write_json

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_tensors(Path(tmp) / "model.safetensors", model.net.state_dict())
        write_json(
            Path(tmp) / "model.json",
            {"model": model.model_cfg.to_dict(), "data": model.data_cfg.to_dict(), "info": model.info},
        )
    return folder


def load_model(folder, device: str = "cpu") -> DEFModel:
    """A model saved by :func:`save_model` (or a training folder holding ``model/``)."""
    from papercore.io import load_tensors

    folder = Path(folder)
    if (folder / "model" / "model.json").exists():
        folder = folder / "model"
    if not (folder / "model.json").exists():
        raise FileNotFoundError(
            f"{folder}: no def3d model here (expected model.json and model.safetensors; train one with `def3d train`)"
        )
    meta = json.loads((folder / "model.json").read_text())
    mcfg, dcfg = ModelConfig.from_dict(meta["model"]), DataConfig.from_dict(meta["data"])
    net, head = build_model(mcfg)
    net.load_state_dict(load_tensors(folder / "model.safetensors"))
    return DEFModel(net.to(device).eval(), head, mcfg, dcfg, meta.get("info", {}))
