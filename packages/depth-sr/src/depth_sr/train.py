r"""Training MSG-Net on synthetic scenes with :class:`papercore.train.Trainer`, saving and loading
models, and the built-in models cached on first use.

The losses, on a batch of HR crops with LR inputs, in terms of the normalised output
:math:`\bar D_h` and the normalised truth :math:`\bar D^* = (D^* - a)/(b - a)` (same :math:`a, b`
as the input):

* ``l2``: :math:`\mathrm{mean}_{p}\,(\bar D_h - \bar D^*)^2` over valid pixels;
* ``msev``: :math:`\mathrm{MSE}_v(D_h, D^*)` of :mod:`depth_sr.visual` with the crop's intrinsics;
* ``mix``: ``l2 + lam * msev`` (MSG-V).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from depth_sr.camera import valid_mask
from depth_sr.config import DSRTrainConfig, MSGConfig, SceneConfig
from depth_sr.msg import MSGNet, normalise
from depth_sr.scenes import Scene, make_lr, synthetic_scenes
from depth_sr.visual import mse_v
from papercore.io import atomic_dir, cache_dir, load_tensors, read_json, save_tensors, write_json

log = logging.getLogger(__name__)

__all__ = ["CropSampler", "fit", "load_model", "losses", "pretrained", "save_model", "scene_splits"]


def scene_splits(scene: SceneConfig, n_train: int, n_val: int, n_test: int, seed: int = 0, device=None):
    """Disjoint train / validation / test scenes (seeds ``3 seed``, ``3 seed + 1``, ``3 seed + 2``)."""
    kw = dict(size=scene.size, n_objects=(scene.min_objects, scene.max_objects), fov=scene.fov,
              texture=scene.texture, device=device)  # fmt: skip
    return tuple(synthetic_scenes(n, 3 * seed + k, **kw) for k, n in enumerate((n_train, n_val, n_test)))


class CropSampler:
    """``sampler(n, generator)``: ``n`` random HR crops of random scenes, as ``(lr, rgb, hr, K)``."""

    def __init__(self, scenes: list[Scene], scale: int, crop: int, noise: float = 0.0):
        if crop % scale:
            raise ValueError(f"crop {crop} must be a multiple of the scale {scale}")
        self.depth = torch.stack([s.depth for s in scenes])
        self.rgb = torch.stack([s.rgb for s in scenes])
        self.K = torch.stack([s.K.tensor(s.depth.device) for s in scenes])
        H, W = self.depth.shape[-2:]
        if crop > min(H, W):
            raise ValueError(f"crop {crop} is larger than the {H}x{W} scenes")
        self.scale, self.crop, self.noise = scale, crop, noise

    def __call__(self, n: int, generator: torch.Generator):
        H, W = self.depth.shape[-2:]
        c, s = self.crop, self.scale
        dev = generator.device  # a CUDA generator on GPUs (papercore.train draws on the device)
        idx = torch.randint(len(self.depth), (n,), generator=generator, device=dev).tolist()
        top = (torch.randint((H - c) // s + 1, (n,), generator=generator, device=dev) * s).tolist()
        left = (torch.randint((W - c) // s + 1, (n,), generator=generator, device=dev) * s).tolist()
        hr = torch.stack([self.depth[i, t : t + c, l : l + c] for i, t, l in zip(idx, top, left)])
        rgb = torch.stack([self.rgb[i, :, t : t + c, l : l + c] for i, t, l in zip(idx, top, left)])
        K = self.K[idx].clone()
        K[:, 2] -= torch.tensor(left, dtype=K.dtype, device=K.device)
        K[:, 3] -= torch.tensor(top, dtype=K.dtype, device=K.device)
        lr = make_lr(hr, s, self.noise, generator)
        return lr[:, None], rgb, hr[:, None], K


def full_batch(scenes: list[Scene], scale: int, noise: float = 0.0, seed: int = 0):
    """Whole scenes as one ``(lr, rgb, hr, K)`` batch (validation and test)."""
    g = torch.Generator().manual_seed(seed)
    hr = torch.stack([s.depth for s in scenes])
    return (make_lr(hr, scale, noise, g)[:, None], torch.stack([s.rgb for s in scenes]), hr[:, None],
            torch.stack([s.K.tensor(hr.device) for s in scenes]))  # fmt: skip


def losses(model: MSGNet, batch, loss: str = "mix", lam: float = 1.0) -> dict[str, torch.Tensor]:
    """``{"loss", "l2", "msev"}`` of a batch (see the module docstring)."""
    lr, rgb, hr, K = batch
    norm, lo, rng, _ = normalise(lr)
    pred_n = model(lr, rgb, normalised_output=True)
    ok = valid_mask(hr)
    l2 = (torch.where(ok, pred_n - (hr - lo) / rng, 0) ** 2).sum() / ok.sum().clamp_min(1)
    msev = mse_v((lo + rng * pred_n)[:, 0], hr[:, 0], K)
    total = {"l2": l2, "msev": msev, "mix": l2 + lam * msev}[loss]
    return {"loss": total, "l2": l2.detach(), "msev": msev.detach()}


def fit(
    msg: MSGConfig,
    train: DSRTrainConfig,
    train_scenes: list[Scene],
    val_scenes: list[Scene] | None = None,
    *,
    noise: float = 0.0,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    plot: bool = True,
) -> MSGNet:
    """Train an MSG-Net; with ``val_scenes``, keep the weights of the best validation loss."""
    torch.manual_seed(seed)
    model = MSGNet(msg)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    from papercore.train import Trainer

    trainer = Trainer({"msg": model}, {"msg": opt}, train, out=out, seed=seed, resume=resume, device=device)
    sampler = CropSampler(train_scenes, msg.scale, train.crop, noise)
    val = full_batch(val_scenes, msg.scale, noise, seed) if val_scenes else None

    def step(t, batch):
        parts = losses(t.models["msg"], batch, train.loss, train.lam)
        t.optimize("msg", parts["loss"])
        return {k: v.detach() for k, v in parts.items()}

    def validate(t):
        v = tuple(x.to(t.device) for x in val)
        return {k: float(x) for k, x in losses(t.unwrap("msg"), v, train.loss, train.lam).items()}

    trainer.fit(step, sampler, val_fn=validate if val is not None else None, monitor="loss",
                desc=f"msg x{msg.scale} {train.loss}", plot=plot)  # fmt: skip
    model = trainer.unwrap("msg").cpu().eval()
    if out is not None and trainer.is_main:  # one writer under torchrun / accelerate launch
        save_model(model, Path(out) / "model", {"train": train.to_dict(), "noise": noise, "seed": seed})
    return model


def save_model(model: MSGNet, folder: str | Path, meta: dict | None = None) -> Path:
    """``folder/msg.safetensors`` + ``folder/msg.json`` (the config and ``meta``), written atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_tensors(tmp / "msg.safetensors", {k: v.detach().cpu() for k, v in model.state_dict().items()})
        write_json(tmp / "msg.json", {"config": model.config.to_dict(), **(meta or {})})
    return folder


def load_model(path: str | Path, device="cpu") -> MSGNet:
    """A model saved by :func:`save_model` (``path``: its folder, or a run folder holding ``model/``)."""
    path = Path(path)
    folder = path / "model" if (path / "model" / "msg.json").is_file() else path
    if not (folder / "msg.json").is_file():
        raise FileNotFoundError(f"no depth-sr model in {path}: give a folder written by `depth-sr train`")
    meta = read_json(folder / "msg.json")
    model = MSGNet(MSGConfig.from_dict(meta["config"]))
    model.load_state_dict(load_tensors(folder / "msg.safetensors"))
    model.meta = meta
    return model.to(device).eval()


#: the recipe of the built-in models: MSG-V (L2 + 0.01 MSE_v, the weight chosen on validation scenes)
#: with the CPU-sized widths of the benchmark, fitted on synthetic scenes in minutes on 2 cores
BUILTIN = {"steps": 1500, "batch_size": 8, "n_train": 160, "n_val": 16, "loss": "mix", "lam": 0.01,
           "width": 16, "y_channels": 16, "depth_channels": 32}  # fmt: skip


def pretrained(scale: int = 4, device="cpu", **overrides) -> MSGNet:
    """The built-in MSG-V model for ``scale``, trained on first use and cached under
    ``$PAPERCORE_CACHE/depth-sr`` (keyed by a hash of the recipe; ``overrides`` change it)."""
    recipe = {**BUILTIN, **overrides}
    msg = MSGConfig(scale=scale, width=recipe["width"], y_channels=recipe["y_channels"],
                    depth_channels=recipe["depth_channels"])  # fmt: skip
    crop = max(64, 8 * scale)  # x16: whole 128-pixel scenes, 8x8 LR
    steps = recipe["steps"] if crop == 64 else max(1, recipe["steps"] * 64**2 // crop**2)
    scene = SceneConfig(size=max(128, crop))
    key = hashlib.sha256(
        json.dumps([msg.to_dict(), recipe, scene.to_dict()], sort_keys=True).encode()
    ).hexdigest()
    folder = cache_dir("depth-sr", f"msg-x{scale}-{key[:12]}")
    manifest = folder / "manifest.json"
    weights = folder / "msg.safetensors"
    if manifest.is_file() and weights.is_file():
        if read_json(manifest).get("sha256") == hashlib.sha256(weights.read_bytes()).hexdigest():
            return load_model(folder, device)
        log.warning("the cached model in %s does not verify: training it again", folder)
    log.warning("training the built-in x%d model once (cached in %s; a few minutes on a CPU)", scale, folder)
    t0 = time.perf_counter()
    train_s, val_s, _ = scene_splits(scene, recipe["n_train"], recipe["n_val"], 0, seed=12345)
    tcfg = DSRTrainConfig(steps=steps, batch_size=recipe["batch_size"], crop=crop,
                          loss=recipe["loss"], lam=recipe["lam"], checkpoint_every=0, eval_every=max(1, steps // 8))  # fmt: skip
    model = fit(msg, tcfg, train_s, val_s, seed=0, device="cpu", plot=False)
    save_model(model, folder, {"recipe": recipe, "seconds": round(time.perf_counter() - t0, 1)})
    write_json(manifest, {"sha256": hashlib.sha256((folder / "msg.safetensors").read_bytes()).hexdigest()})
    return load_model(folder, device)
