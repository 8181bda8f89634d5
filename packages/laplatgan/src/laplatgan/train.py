"""Training, stage by stage, through :class:`papercore.train.Trainer` (checkpoints, resume, metrics.jsonl):

1. one autoencoder per level on that level's clouds (validation Chamfer distance keeps the best);
2. the level-1 WGAN-GP on the codes of the lowest level;
3. per higher level, the conditional residual WGAN-GP: real codes ``f_k(X_k)``, conditions
   ``c = f_k(U(X_{k-1}))`` of the *real* lower-level clouds, fake codes ``r + c``.

Every stage writes to its own subfolder of ``out`` (``ae512/``, ``gan512/``, ...), so ``resume=True``
re-runs the pipeline and each finished stage restores in one step.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from laplatgan.config import LaplatGANConfig, LaplatTrainConfig
from laplatgan.data import Splits, pyramid
from laplatgan.losses import chamfer_loss, emd_loss
from laplatgan.models import gradient_penalty
from laplatgan.pyramid import LaplatGAN
from laplatgan.upsample import knn_upsample
from papercore.geometry import chamfer
from papercore.train import Trainer

log = logging.getLogger(__name__)


def _sub(out, name):
    return None if out is None else Path(out) / name


def train_autoencoder(ae, train: torch.Tensor, val: torch.Tensor | None, cfg: LaplatGANConfig, tcfg: LaplatTrainConfig,
                      out=None, seed=0, device="cpu", resume=False, plot=True) -> dict:  # fmt: skip
    """Fit ``ae`` on clouds ``train`` ``[K, n, 3]``; with ``val``, keep the weights of the best validation CD."""
    tc = dataclasses.replace(tcfg, steps=tcfg.ae_steps, eval_every=tcfg.eval_every if val is not None else 0)
    opt = torch.optim.Adam(ae.parameters(), cfg.ae_lr)
    trainer = Trainer({"ae": ae}, {"ae": opt}, tc, out=out, seed=seed, resume=resume, device=device)
    loss_fn = chamfer_loss if cfg.ae_loss == "cd" else emd_loss

    def step(t, batch):
        (x,) = batch
        return {"loss": t.optimize("ae", loss_fn(t.models["ae"](x), x))}

    def val_fn(t):
        rec = torch.cat([t.unwrap("ae")(val[s : s + 64].to(t.device)) for s in range(0, len(val), 64)])
        return {"val_cd": float(chamfer(rec, val.to(t.device)).mean())}

    res = trainer.fit(step, torch.utils.data.TensorDataset(train), val_fn=val_fn if val is not None else None,
                      monitor="val_cd", desc=f"ae{ae.n_points}", plot=plot)  # fmt: skip
    return {"steps": res.step, "best_val_cd": res.best_value, "seconds": round(res.seconds, 2)}


@torch.no_grad()
def encode(ae, clouds: torch.Tensor, batch: int = 128, device="cpu") -> torch.Tensor:
    ae.eval()
    return torch.cat(
        [ae.encode(clouds[s : s + batch].to(device)).cpu() for s in range(0, len(clouds), batch)]
    )


def train_gan(gen, critic, real: torch.Tensor, cond: torch.Tensor | None, cfg: LaplatGANConfig, tcfg: LaplatTrainConfig,
              out=None, seed=0, device="cpu", resume=False, steps: int | None = None, desc="gan", plot=True) -> dict:  # fmt: skip
    """WGAN-GP on latent codes ``real`` ``[K, d]``; with ``cond`` ``[K, d]``, ``gen`` outputs a residual
    and the fake code is ``r + c`` (the penalty on ``r + c``, or on ``r`` alone with ``cfg.original_gp``)."""
    tc = dataclasses.replace(tcfg, steps=steps or tcfg.steps, eval_every=0)
    opts = {
        n: torch.optim.Adam(m.parameters(), cfg.gan_lr, betas=tuple(cfg.gan_betas))
        for n, m in (("gen", gen), ("critic", critic))
    }
    trainer = Trainer(
        {"gen": gen, "critic": critic}, opts, tc, out=out, seed=seed, resume=resume, device=device
    )
    real, cond = real.to(trainer.device), None if cond is None else cond.to(trainer.device)
    B, K = tc.batch_size, len(real)
    critic_cond = cond is not None and critic.cond_dim > 0

    def draw(g):
        idx = torch.randint(K, (B,), generator=g, device=g.device).to(trainer.device)
        z = torch.randn(B, cfg.z_dim, generator=g, device=g.device).to(trainer.device) * cfg.noise_std
        return real[idx], (cond[idx] if cond is not None else None), z

    def fake_code(G, z, c):
        return G(z) if c is None else G(z, c) + c

    def step(t, _):
        G, D = t.models["gen"], t.models["critic"]
        for _ in range(cfg.n_critic):
            y, c, z = draw(t.generator)
            with torch.no_grad():
                fake = fake_code(G, z, c)
            dc = c if critic_cond else None
            gp_fake = fake - c if (cfg.original_gp and c is not None) else fake
            w = D(y, dc).mean() - D(fake, dc).mean()
            gp = (
                gradient_penalty(D, y, gp_fake, dc, generator=t.generator)
                if cfg.gp_weight
                else torch.zeros(())
            )
            t.optimize("critic", -w + cfg.gp_weight * gp)
        y, c, z = draw(t.generator)
        loss_g = -D(fake_code(G, z, c), c if critic_cond else None).mean()
        t.optimize("gen", loss_g)
        return {"wdist": w.detach(), "gp": gp.detach(), "loss_g": loss_g.detach()}

    res = trainer.fit(step, None, desc=desc, plot=plot)
    last = res.history[-1] if res.history else {}
    return {"steps": res.step, "wdist": last.get("wdist"), "seconds": round(res.seconds, 2)}


def conditions(
    model: LaplatGAN, level: int, low: torch.Tensor, batch: int = 128, device="cpu"
) -> torch.Tensor:
    """``c = f_level(U(low))`` for real lower-level clouds ``low``."""
    ae = model.aes[level]
    ae.eval()
    with torch.no_grad():
        return torch.cat([ae.encode(knn_upsample(low[s : s + batch].to(device), model.cfg.upsample_k)).cpu()
                          for s in range(0, len(low), batch)])  # fmt: skip


def fit(splits: Splits, cfg: LaplatGANConfig, tcfg: LaplatTrainConfig, out=None, seed: int = 0, device="cpu",
        resume: bool = False, plot: bool = True) -> LaplatGAN:  # fmt: skip
    """Train the whole pyramid on ``splits.train`` (autoencoders validated on ``splits.val``)."""
    torch.manual_seed(seed)
    model = LaplatGAN(cfg)
    dev = torch.device(device)
    levels = model.levels
    tr, va = (
        pyramid(splits.train, levels, seed),
        pyramid(splits.val, levels, seed + 1) if len(splits.val) else None,
    )
    summary: dict = {
        "data": splits.source,
        "n_train": len(splits.train),
        "n_test": len(splits.test),
        "seed": seed,
        "stages": {},
    }
    for i, n in enumerate(levels):
        ae = model.aes[i]
        summary["stages"][f"ae{n}"] = train_autoencoder(ae, tr[n], va[n] if va else None, cfg, tcfg, _sub(out, f"ae{n}"),
                                                        seed + i, dev, resume, plot)  # fmt: skip
        ae.to(dev)
    for i, n in enumerate(levels):
        real = encode(model.aes[i], tr[n], device=dev)
        cond = None if i == 0 else conditions(model, i, tr[levels[i - 1]], device=dev)
        summary["stages"][f"gan{n}"] = train_gan(model.gens[i], model.critics[i], real, cond, cfg, tcfg, _sub(out, f"gan{n}"),
                                                 seed + 10 + i, dev, resume, desc=f"gan{n}", plot=plot)  # fmt: skip
    model.to(dev).eval()
    model.meta = summary
    if out is not None:
        model.save(Path(out) / "model")
    return model
