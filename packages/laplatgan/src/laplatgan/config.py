"""LaplatGAN options: the networks and losses (:class:`LaplatGANConfig`) and the training budget
(:class:`LaplatTrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from papercore.config import Config
from papercore.train import TrainConfig


@dataclass
class LaplatGANConfig(Config):
    """The pyramid: one PointNet autoencoder per level, a latent WGAN-GP at level 1, conditional
    residual WGAN-GPs above it.

    Defaults follow the authors' notebook (latent_3d_points' ``mlp_architecture_ala_iclr_18``: encoder
    1-D convolutions 64-128-128-256 then the 128-d bottleneck, BatchNorm + ReLU, max-pool; decoder
    256-256-3N; generator 128-128; critic 256-512-1; λ = 10; 5 critic steps per generator step), with
    the two bugs fixed: the penalty is taken on ``r + c`` (``original_gp`` restores the residual-only
    penalty) and the generator ends in ReLU like the non-negative codes (``gen_output="batchnorm"``
    restores the notebook's output BatchNorm).
    """

    levels: tuple[int, ...] = field(
        default=(512, 1024, 2048), metadata={"help": "points per level; each level doubles the last"}
    )
    encoder: tuple[int, ...] = field(
        default=(64, 128, 128, 256), metadata={"help": "widths of the PointNet encoder's 1x1 convolutions"}
    )
    bottleneck: int = field(default=128, metadata={"help": "latent code size (the last convolution's width)"})
    decoder: tuple[int, ...] = field(
        default=(256, 256), metadata={"help": "hidden widths of the MLP decoder"}
    )
    ae_loss: Literal["cd", "emd"] = field(
        default="cd",
        metadata={
            "help": "autoencoder loss: cd (Chamfer) or emd (auction matching; the paper's loss, slow on CPUs)"
        },
    )
    ae_lr: float = field(default=5e-4, metadata={"help": "Adam learning rate of the autoencoders"})
    z_dim: int = field(default=128, metadata={"help": "noise size of every generator"})
    gen_hidden: tuple[int, ...] = field(default=(128,), metadata={"help": "hidden widths of the generators"})
    critic_hidden: tuple[int, ...] = field(
        default=(256, 512), metadata={"help": "hidden widths of the critics"}
    )
    gen_output: Literal["relu", "batchnorm", "linear"] = field(
        default="relu",
        metadata={
            "help": "level-1 generator's output: relu (non-negative like the codes), batchnorm (the notebook's), linear"
        },
    )
    noise_std: float = field(default=1.0, metadata={"help": "std of the generators' Gaussian noise"})
    gp_weight: float = field(default=10.0, metadata={"help": "lambda of the WGAN-GP gradient penalty"})
    n_critic: int = field(default=5, metadata={"help": "critic steps per generator step"})
    gan_lr: float = field(default=1e-4, metadata={"help": "Adam learning rate of generators and critics"})
    gan_betas: tuple[float, float] = field(default=(0.5, 0.9), metadata={"help": "Adam betas of the GANs"})
    upsample_k: int = field(
        default=7, metadata={"help": "neighbours of the kNN-mean upsampler (the point itself included)"}
    )
    conditional_critic: bool = field(
        default=False,
        metadata={"help": "give the critics of levels 2+ the conditioning code c too (LAPGAN-style)"},
    )
    original_gp: bool = field(
        default=False,
        metadata={"help": "the notebook's bug: penalise interpolates of the residual r alone, not r + c"},
    )

    def validate(self):
        if len(self.levels) < 1 or any(b != 2 * a for a, b in zip(self.levels, self.levels[1:])):
            raise ValueError(
                f"levels must double from one to the next (e.g. 512 1024 2048), got {list(self.levels)}"
            )
        if min(self.levels) < self.upsample_k or self.upsample_k < 1:
            raise ValueError(f"upsample_k must be in [1, {min(self.levels)}], got {self.upsample_k}")
        if self.bottleneck < 1 or self.z_dim < 1 or self.n_critic < 1:
            raise ValueError("bottleneck, z_dim and n_critic must be >= 1")
        if any(w < 1 for w in (*self.encoder, *self.decoder, *self.gen_hidden, *self.critic_hidden)):
            raise ValueError("every hidden width must be >= 1")
        if self.ae_lr <= 0 or self.gan_lr <= 0 or self.gp_weight < 0 or self.noise_std <= 0:
            raise ValueError("learning rates and noise_std must be > 0, gp_weight >= 0")
        if not all(0 <= b < 1 for b in self.gan_betas):
            raise ValueError(f"gan_betas must be in [0, 1), got {list(self.gan_betas)}")


@dataclass
class LaplatTrainConfig(TrainConfig):
    """The budget: ``ae_steps`` per autoencoder, ``steps`` generator updates per GAN level."""

    steps: int = field(
        default=2000, metadata={"help": "generator updates of each level's GAN", "resume": "free"}
    )
    ae_steps: int = field(
        default=2000, metadata={"help": "optimizer steps of each level's autoencoder", "resume": "free"}
    )
    batch_size: int = field(default=50, metadata={"help": "clouds (or codes) per batch"})
    eval_every: int = field(
        default=250,
        metadata={
            "help": "autoencoder validation period (keeps the best on the val split)",
            "resume": "free",
        },
    )
    checkpoint_every: int = field(
        default=500, metadata={"help": "steps between checkpoints", "resume": "free"}
    )
    log_every: int = field(default=50, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})
