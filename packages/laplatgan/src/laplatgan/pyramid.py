r"""The LaplatGAN model: autoencoders per level, the level-1 latent GAN and the residual generators.

Sampling chain (``levels = (512, 1024, 2048)``):

.. math::
    z_1 \xrightarrow{G_1} w_1 \xrightarrow{g_{512}} X_{512} \xrightarrow{U} \xrightarrow{f_{1024}} c_2,\quad
    w_2 = G_2(z_2, c_2) + c_2 \xrightarrow{g_{1024}} X_{1024} \xrightarrow{U} \xrightarrow{f_{2048}} c_3,\quad
    w_3 = G_3(z_3, c_3) + c_3 \xrightarrow{g_{2048}} X_{2048}

:meth:`LaplatGAN.upsample` starts the same chain from a given low-resolution cloud.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from laplatgan.config import LaplatGANConfig
from laplatgan.models import AutoEncoder, Critic, Generator
from laplatgan.upsample import knn_upsample
from papercore.io import atomic_dir, load_tensors, read_json, save_tensors, write_json

MODEL_FILE, META_FILE = "model.safetensors", "laplatgan.json"


def make_generator(cfg: LaplatGANConfig, level: int) -> Generator:
    if level == 0:
        return Generator(cfg.z_dim, cfg.bottleneck, cfg.gen_hidden, 0, cfg.gen_output)
    return Generator(cfg.z_dim, cfg.bottleneck, cfg.gen_hidden, cfg.bottleneck, "linear")


def make_critic(cfg: LaplatGANConfig, level: int) -> Critic:
    cond = cfg.bottleneck if (level > 0 and cfg.conditional_critic) else 0
    return Critic(cfg.bottleneck, cfg.critic_hidden, cond)


class LaplatGAN(nn.Module):
    """The pyramid of :class:`LaplatGANConfig` (untrained until :func:`laplatgan.train.fit` or :meth:`load`)."""

    def __init__(self, cfg: LaplatGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or LaplatGANConfig()
        self.aes = nn.ModuleList(AutoEncoder(n, cfg.encoder, cfg.bottleneck, cfg.decoder) for n in cfg.levels)
        self.gens = nn.ModuleList(make_generator(cfg, i) for i in range(len(cfg.levels)))
        self.critics = nn.ModuleList(make_critic(cfg, i) for i in range(len(cfg.levels)))
        self.meta: dict = {}

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(self.cfg.levels)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.cfg.z_dim, generator=g, device=g.device)
        return (z * self.cfg.noise_std).to(self.device)

    def refine(self, level: int, low: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One pyramid step: the clouds of level ``level`` from clouds of level ``level - 1``."""
        c = self.aes[level].encode(knn_upsample(low, self.cfg.upsample_k))
        return self.aes[level].decode(self.gens[level](self._noise(len(low), g), c) + c)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, *, batch: int = 256) -> dict[int, torch.Tensor]:
        """``n`` clouds per level ``{512: [n, 512, 3], 1024: ..., 2048: ...}``, deterministic under ``seed``."""
        was = self.training
        self.eval()
        g = torch.Generator(device="cpu").manual_seed(seed)
        out: dict[int, list] = {k: [] for k in self.levels}
        for s in range(0, n, batch):
            m = min(batch, n - s)
            x = self.aes[0].decode(self.gens[0](self._noise(m, g)))
            out[self.levels[0]].append(x)
            for i in range(1, len(self.levels)):
                x = self.refine(i, x, g)
                out[self.levels[i]].append(x)
        self.train(was)
        return {k: torch.cat(v).cpu() for k, v in out.items()}

    @torch.no_grad()
    def upsample(self, low: torch.Tensor, seed: int = 0) -> dict[int, torch.Tensor]:
        """The chain from given clouds ``[B, n, 3]`` (or ``[n, 3]``) of a pyramid level ``n`` up to the top."""
        single = low.ndim == 2
        x = low[None] if single else low
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"expected clouds [B, n, 3], got {tuple(low.shape)}")
        n = x.shape[1]
        if n not in self.levels[:-1]:
            raise ValueError(
                f"the input has {n} points, but this model upsamples from {' or '.join(map(str, self.levels[:-1]))} "
                "points (a model from another resolution?): subsample the cloud to one of those sizes"
            )
        if not torch.isfinite(x).all():
            raise ValueError("the input cloud holds NaN or inf coordinates")
        was = self.training
        self.eval()
        g = torch.Generator(device="cpu").manual_seed(seed)
        x = x.to(self.device, torch.float32)
        out = {}
        for i in range(self.levels.index(n) + 1, len(self.levels)):
            x = self.refine(i, x, g)
            out[self.levels[i]] = (x[0] if single else x).cpu()
        self.train(was)
        return out

    @torch.no_grad()
    def reconstruct(self, clouds: torch.Tensor, level: int, batch: int = 128) -> torch.Tensor:
        """Autoencoder reconstructions of clouds at ``level`` (points) — the upper bound of any latent model."""
        ae = self.aes[self.levels.index(level)]
        was = ae.training
        ae.eval()
        out = torch.cat(
            [ae(clouds[s : s + batch].to(self.device)).cpu() for s in range(0, len(clouds), batch)]
        )
        ae.train(was)
        return out

    def save(self, path) -> Path:
        """Write ``model.safetensors`` and ``laplatgan.json`` (config, data source, training summary) into ``path``."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            save_tensors(
                tmp / MODEL_FILE, {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            )
            write_json(tmp / META_FILE, {"config": self.cfg.to_dict(), **self.meta})
        return path

    @classmethod
    def load(cls, path, device="cpu") -> LaplatGAN:
        path = Path(path)
        if (path / "model" / META_FILE).is_file():  # the output folder of `laplatgan train`
            path = path / "model"
        if not (path / META_FILE).is_file():
            raise FileNotFoundError(
                f"no LaplatGAN model in {path} ({META_FILE} missing): train one with `laplatgan train`"
            )
        meta = read_json(path / META_FILE)
        model = cls(LaplatGANConfig.from_dict(meta.pop("config")))
        model.load_state_dict(load_tensors(path / MODEL_FILE))
        model.meta = meta
        return model.to(device).eval()
