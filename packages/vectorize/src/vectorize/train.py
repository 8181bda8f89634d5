"""Training the primitive network and the cleaning U-Net on on-the-fly synthetic patches
(``papercore.train.Trainer``), and the built-in models trained on first use and cached."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from papercore.io import atomic_dir, cache_dir, load_tensors, read_json, save_tensors, write_json
from papercore.train import Trainer
from vectorize import synth
from vectorize.config import CleanConfig, NetConfig, VectorizeTrainConfig
from vectorize.model import PATCH, CleanNet, PrimitiveNet, canonical_targets, slot_loss

log = logging.getLogger(__name__)
VAL_SEED = 10_000_019  # validation patches; the benchmark's test pages use other seeds


def patch_batch(n: int, generator: torch.Generator, degrade_p: float = 0.0):
    """``n`` synthetic patches: (image, clean ink, drawings), seeded by ``generator``."""
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    samples = [synth.sample(rng, PATCH, PATCH, degrade_p=degrade_p) for _ in range(n)]
    img, ink, ds = zip(*samples)
    return torch.from_numpy(np.stack(img)), torch.from_numpy(np.stack(ink)), list(ds)


def _noam(cfg: NetConfig):
    return lambda s: min((s + 1) / cfg.warmup, (cfg.warmup / (s + 1)) ** 0.5)


def train_primitives(cfg: NetConfig, train: VectorizeTrainConfig, out: str | Path | None = None, seed: int = 0,
                     resume: bool = False, device: str = "auto") -> tuple[PrimitiveNet, list]:  # fmt: skip
    """Train the primitive network on clean synthetic patches (cleaning comes first in the pipeline).
    Adam (0.9, 0.98), eps 1e-9, Noam schedule; validation on fixed patches keeps the best weights."""
    torch.manual_seed(seed)
    net = PrimitiveNet(cfg)
    opt = torch.optim.Adam(net.parameters(), cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _noam(cfg))
    t = Trainer({"net": net}, {"net": opt}, train, out=out, seed=seed, resume=resume,
                schedulers={"net": sched}, device=device)  # fmt: skip
    _, vink, vds = patch_batch(64, torch.Generator().manual_seed(VAL_SEED))
    vtarget, vmask = canonical_targets(vds, cfg.slots, cfg.primitive)

    def step(tr, _):
        _, ink, ds = patch_batch(train.batch_size, tr.generator)
        target, mask = canonical_targets(ds, cfg.slots, cfg.primitive)
        dev = tr.device
        losses = slot_loss(tr.models["net"](ink.to(dev)), target.to(dev), mask.to(dev), cfg)
        tr.optimize("net", losses["loss"])
        return losses

    def val(tr):
        dev = tr.device
        return slot_loss(tr.models["net"](vink.to(dev)), vtarget.to(dev), vmask.to(dev), cfg)

    res = t.fit(step, val_fn=val if train.eval_every else None, monitor="loss", desc="primitives")
    net = t.unwrap("net").cpu().eval()
    if out is not None:
        save_model(Path(out) / "primitives", net, cfg)
    return net, res.history


def train_cleaning(cfg: CleanConfig, train: VectorizeTrainConfig, out: str | Path | None = None, seed: int = 0,
                   resume: bool = False, device: str = "auto") -> tuple[CleanNet, list]:  # fmt: skip
    """Train the cleaning U-Net on degraded synthetic patches: BCE of the extraction head against the
    clean ink mask plus MSE of the restoration head against the clean ink."""
    torch.manual_seed(seed)
    net = CleanNet(cfg)
    opt = torch.optim.Adam(net.parameters(), cfg.clean_lr)
    t = Trainer({"net": net}, {"net": opt}, train, out=out, seed=seed, resume=resume, device=device)
    vimg, vink, _ = patch_batch(64, torch.Generator().manual_seed(VAL_SEED + 1), degrade_p=1.0)

    def losses(tr, img, ink):
        logit, rest = tr.models["net"](img.to(tr.device))
        ink = ink.to(tr.device)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, (ink > 0.5).float())
        mse = torch.nn.functional.mse_loss(rest, ink)
        return {"loss": bce + mse, "bce": bce.detach(), "mse": mse.detach()}

    def step(tr, _):
        img, ink, _ = patch_batch(train.batch_size, tr.generator, degrade_p=1.0)
        ls = losses(tr, img, ink)
        tr.optimize("net", ls["loss"])
        return ls

    res = t.fit(
        step, val_fn=(lambda tr: losses(tr, vimg, vink)) if train.eval_every else None, desc="cleaning"
    )
    net = t.unwrap("net").cpu().eval()
    if out is not None:
        save_model(Path(out) / "cleaning", net, cfg)
    return net, res.history


def save_model(folder: str | Path, net: torch.nn.Module, cfg) -> None:
    """``folder/model.safetensors`` + ``folder/config.json`` (atomic)."""
    with atomic_dir(folder) as tmp:
        save_tensors(tmp / "model.safetensors", {k: v.contiguous() for k, v in net.state_dict().items()})
        write_json(tmp / "config.json", {"class": type(cfg).__name__, "config": cfg.to_dict()})


def load_model(folder: str | Path, device: str | torch.device = "cpu"):
    """A network saved by :func:`save_model` (no pickles: safetensors + JSON)."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{folder}: no model.safetensors (train one with `vectorize train --out DIR`)"
        )
    meta = read_json(folder / "config.json")
    cls, cfg_cls = (PrimitiveNet, NetConfig) if meta["class"] == "NetConfig" else (CleanNet, CleanConfig)
    net = cls(cfg_cls.from_dict(meta["config"]))
    net.load_state_dict(load_tensors(folder / "model.safetensors"))
    return net.to(device).eval()


BUILTIN = {
    "primitives": (
        NetConfig(),
        VectorizeTrainConfig(steps=1500, batch_size=32, eval_every=250, checkpoint_every=250),
    ),
    "cleaning": (
        CleanConfig(),
        VectorizeTrainConfig(steps=300, batch_size=16, eval_every=100, checkpoint_every=100),
    ),
}


def builtin(part: str, device: str = "cpu", seed: int = 0):
    """The built-in ``primitives`` or ``cleaning`` model: trained on first use (CPU, minutes), then
    read from the cache (``$PAPERCORE_CACHE/vectorize``). An interrupted training resumes."""
    cfg, train = BUILTIN[part]
    key = hashlib.sha1(
        json.dumps([part, cfg.to_dict(), train.to_dict(), seed], sort_keys=True).encode()
    ).hexdigest()[:12]
    root = cache_dir("vectorize", f"{part}-{key}")
    if not (root / part / "model.safetensors").is_file():
        log.warning("training the built-in %s model once (cached in %s)", part, root)
        fn = train_primitives if part == "primitives" else train_cleaning
        fn(cfg, train, out=root, seed=seed, resume=(root / "checkpoint").is_dir(), device="cpu")
    return load_model(root / part, device)
