"""LaplatGAN (LSLP-GAN, VISAPP 2020): latent-space Laplacian pyramid GANs for 3-D point clouds.

A PointNet autoencoder per level (512, 1024, 2048 points), a latent WGAN-GP at the lowest level, and
above it conditional residual WGAN-GPs on codes: ``code = r + c`` with ``c = f(U(lower level))`` and U
the kNN-mean upsampler. Baselines (l-GAN, latent GMM) and metrics come along; the metrics live in
:mod:`papercore.geometry`.
"""

__version__ = "0.1.0"

from laplatgan.baselines import LGAN, LatentGMM, equal_compute_steps  # noqa: E402
from laplatgan.config import LaplatGANConfig, LaplatTrainConfig  # noqa: E402
from laplatgan.data import Splits, from_folder, load_data, pyramid, synthetic  # noqa: E402
from laplatgan.evaluate import per_level, resolve_metrics  # noqa: E402
from laplatgan.losses import chamfer_loss, emd_loss  # noqa: E402
from laplatgan.models import AutoEncoder, Critic, Decoder, Generator, PointNetEncoder, gradient_penalty  # noqa: E402
from laplatgan.pyramid import LaplatGAN  # noqa: E402
from laplatgan.train import fit, train_autoencoder, train_gan  # noqa: E402
from laplatgan.upsample import knn_upsample  # noqa: E402

__all__ = [
    "LGAN",
    "AutoEncoder",
    "Critic",
    "Decoder",
    "Generator",
    "LaplatGAN",
    "LaplatGANConfig",
    "LaplatTrainConfig",
    "LatentGMM",
    "PointNetEncoder",
    "Splits",
    "chamfer_loss",
    "emd_loss",
    "equal_compute_steps",
    "fit",
    "from_folder",
    "gradient_penalty",
    "knn_upsample",
    "load_data",
    "per_level",
    "pyramid",
    "resolve_metrics",
    "synthetic",
    "train_autoencoder",
    "train_gan",
]
