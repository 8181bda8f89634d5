"""Baselines at equal compute, on the codes of the top level's autoencoder (AE-2048):

* :class:`LGAN`: Achlioptas et al.'s l-GAN — the level-1 generator and critic of the same config on
  AE-2048 codes, with the pyramid's critic:generator ratio and as many generator updates as the
  pyramid's GANs together (``steps × levels``);
* :class:`LatentGMM`: a Gaussian mixture on the codes (scikit-learn, 32 full-covariance components by
  default), the strongest model of latent_3d_points;
* the real-vs-real oracle is a second real test set (``Splits.test2``), and AE reconstructions of the
  test set bound any latent model (:meth:`laplatgan.pyramid.LaplatGAN.reconstruct`).
"""

from __future__ import annotations

import numpy as np
import torch

from laplatgan.config import LaplatGANConfig, LaplatTrainConfig
from laplatgan.models import AutoEncoder
from laplatgan.pyramid import make_critic, make_generator
from laplatgan.train import encode, train_gan


class LGAN:
    """l-GAN: a latent WGAN-GP on the codes of ``ae`` (the top level's autoencoder)."""

    def __init__(self, ae: AutoEncoder, cfg: LaplatGANConfig):
        self.ae, self.cfg = ae, cfg
        self.gen, self.critic = make_generator(cfg, 0), make_critic(cfg, 0)

    def fit(
        self,
        clouds: torch.Tensor,
        tcfg: LaplatTrainConfig,
        steps: int,
        out=None,
        seed=0,
        device="cpu",
        plot=True,
    ) -> dict:
        codes = encode(self.ae, clouds, device=device)
        return train_gan(
            self.gen,
            self.critic,
            codes,
            None,
            self.cfg,
            tcfg,
            out,
            seed,
            device,
            steps=steps,
            desc="lgan",
            plot=plot,
        )

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        self.gen.eval()
        self.ae.eval()
        dev = next(self.gen.parameters()).device
        z = (torch.randn(n, self.cfg.z_dim, generator=g) * self.cfg.noise_std).to(dev)
        return self.ae.decode(self.gen(z)).cpu()


class LatentGMM:
    """A Gaussian mixture on autoencoder codes; samples decode through the same autoencoder."""

    def __init__(self, ae: AutoEncoder, n_components: int = 32, covariance_type: str = "full", seed: int = 0):
        from sklearn.mixture import GaussianMixture

        self.ae = ae
        self.gmm = GaussianMixture(
            n_components, covariance_type=covariance_type, random_state=seed, reg_covar=1e-5
        )

    def fit(self, clouds: torch.Tensor, device="cpu") -> LatentGMM:
        codes = encode(self.ae, clouds, device=device).double().numpy()
        if len(codes) < self.gmm.n_components:
            self.gmm.set_params(n_components=max(1, len(codes) // 2))
        self.gmm.fit(codes)
        return self

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.gmm.set_params(random_state=seed)
        codes, _ = self.gmm.sample(n)
        codes = torch.from_numpy(np.asarray(codes)).float()[
            torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        ]
        self.ae.eval()
        dev = next(self.ae.parameters()).device
        return self.ae.decode(codes.to(dev)).cpu()


def equal_compute_steps(tcfg: LaplatTrainConfig, levels: int) -> int:
    """The l-GAN's generator updates: as many as the pyramid's GANs together."""
    return tcfg.steps * levels


__all__ = ["LGAN", "LatentGMM", "equal_compute_steps"]
