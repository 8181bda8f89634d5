"""The built-in model of ``def3d predict``: the small DGCNN-hist, trained on first use and cached.

The recipe is fixed (:data:`BUILTIN`); the weights live under ``$PAPERCORE_CACHE/def3d/models/<hash>``
and are rebuilt when missing or damaged. Training takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
import json
import logging

from def3d.config import PRESETS, DataConfig, DEF3DTrainConfig, ModelConfig
from def3d.train import DEFModel, load_model, train

__all__ = ["BUILTIN", "builtin_model"]

log = logging.getLogger(__name__)

BUILTIN = {
    "model": {**{k: v for k, v in PRESETS["small"].items()}, "head": "hist"},
    "data": {"resolution": 0.05, "patch_points": 512, "noise": "0,0.25", "patches_per_shape": 8},
    "train": {"steps": 600, "batch_size": 8, "train_patches": 512, "val_patches": 32, "eval_every": 100,
              "checkpoint_every": 100, "log_every": 25},
}  # fmt: skip


def builtin_model(device: str = "cpu") -> DEFModel:
    """The cached built-in model, trained now if absent (a few minutes on a CPU)."""
    from papercore.io import cache_dir

    key = hashlib.sha256(json.dumps(BUILTIN, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir("def3d", "models", f"builtin-{key}")
    try:
        return load_model(folder, device)
    except Exception:
        pass
    log.warning("training the built-in def3d model once (a few minutes on a CPU); cached in %s", folder)
    m, d, t = (
        ModelConfig(**BUILTIN["model"]),
        DataConfig(**BUILTIN["data"]),
        DEF3DTrainConfig(**BUILTIN["train"]),
    )
    train(m, d, t, out=folder.with_name(folder.name + "-run"), seed=0, resume=(folder.with_name(folder.name + "-run") / "checkpoint").exists(),
          device=device, plot=False)  # fmt: skip
    import shutil

    shutil.copytree(folder.with_name(folder.name + "-run") / "model", folder, dirs_exist_ok=True)
    return load_model(folder, device)
