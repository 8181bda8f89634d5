"""Configs of def3d: the data, the networks, the training budget, curve extraction."""

from __future__ import annotations

from dataclasses import dataclass, field

from papercore.config import Config
from papercore.train import TrainConfig

__all__ = ["CurveConfig", "DataConfig", "DEF3DTrainConfig", "ModelConfig", "PRESETS"]


@dataclass
class DataConfig(Config):
    """Synthetic patches: resolution, size, noise, annotation rule."""

    resolution: float = field(
        default=0.05,
        metadata={"help": "sampling resolution r (shapes scaled by DEF's convention: q25 curve length = 1)"},
    )
    upper: float = field(
        default=1.0, metadata={"help": "distance upper bound (targets are d / upper in [0, 1])"}
    )
    patch_points: int = field(default=4096, metadata={"help": "points per point patch"})
    image_size: int = field(default=64, metadata={"help": "range-image side in pixels (pitch r)"})
    noise: str = field(
        default="0,0.25", metadata={"help": "comma-separated noise levels sigma / r, one drawn per patch"}
    )
    sampling: str = field(
        default="uniform",
        metadata={"help": "uniform or blue (farthest-point subsampling of a 4x denser sample)"},
    )
    rule: str = field(
        default="surface", metadata={"help": "annotation: surface (DEF's same-surface rule) or global"}
    )
    patches_per_shape: int = field(default=4, metadata={"help": "patches cut from each random shape"})

    def validate(self):
        if not (self.resolution > 0 and self.upper > 0):
            raise ValueError("resolution and upper must be > 0")
        if self.patch_points < 32 or self.image_size < 16:
            raise ValueError("patch_points must be >= 32 and image_size >= 16")
        try:
            levels = [float(s) for s in self.noise.split(",")]
        except ValueError:
            raise ValueError(f"noise must be comma-separated numbers, got {self.noise!r}") from None
        if any(s < 0 for s in levels):
            raise ValueError("noise levels must be >= 0")
        if self.sampling not in ("uniform", "blue"):
            raise ValueError(f"sampling must be uniform or blue, got {self.sampling!r}")
        if self.rule not in ("surface", "global"):
            raise ValueError(f"rule must be surface or global, got {self.rule!r}")
        if self.patches_per_shape < 1:
            raise ValueError("patches_per_shape must be >= 1")


# depth, width, k: the paper's DGCNN and a CPU-sized one; resnet depth, decoder width for the UNet
PRESETS = {
    "d6w158": {"model": "points", "depth": 6, "width": 158, "k": 30, "mlp": 512},
    "small": {"model": "points", "depth": 3, "width": 32, "k": 16, "mlp": 64},
    "unet152": {"model": "image", "encoder": "resnet152", "width": 512},
    "unet18": {"model": "image", "encoder": "resnet18", "width": 128},
}


@dataclass
class ModelConfig(Config):
    """A DEF network: DGCNN on points or a ResNet-UNet on range images, with a loss head."""

    model: str = field(
        default="points",
        metadata={"help": "points (DGCNN) or image (UNet with a torchvision ResNet encoder)"},
    )
    depth: int = field(default=3, metadata={"help": "DGCNN EdgeConv blocks"})
    width: int = field(default=32, metadata={"help": "DGCNN block width / UNet widest decoder width"})
    k: int = field(default=16, metadata={"help": "DGCNN neighbours"})
    mlp: int = field(default=64, metadata={"help": "DGCNN per-point MLP width (then mlp/2; DEF: 512)"})
    encoder: str = field(
        default="resnet18",
        metadata={"help": "UNet encoder: resnet18, resnet34, resnet50, resnet101, resnet152"},
    )
    head: str = field(
        default="hist", metadata={"help": "loss head: hist (240 bins + 2x2 margin, KL), mse or l1"}
    )
    pca_channel: bool = field(
        default=False,
        metadata={"help": "add the PCA surface variation as an input channel (stands in for VCM)"},
    )

    def validate(self):
        if self.model not in ("points", "image"):
            raise ValueError(f"model must be points or image, got {self.model!r}")
        if self.head not in ("hist", "mse", "l1"):
            raise ValueError(f"head must be hist, mse or l1, got {self.head!r}")
        if self.depth < 1 or self.width < 4 or self.k < 2 or self.mlp < 4:
            raise ValueError("depth must be >= 1, width >= 4, k >= 2, mlp >= 4")
        if self.encoder not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
            raise ValueError(f"unknown encoder {self.encoder!r}: choose resnet18/34/50/101/152")


@dataclass
class DEF3DTrainConfig(TrainConfig):
    """Training budget (Adam, exponential learning-rate decay as DEF)."""

    steps: int = field(default=600, metadata={"help": "optimisation steps", "resume": "free"})
    batch_size: int = field(default=8, metadata={"help": "patches per step"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    decay: float = field(
        default=0.5, metadata={"help": "learning-rate factor over the whole run (exponential)"}
    )
    train_patches: int = field(default=512, metadata={"help": "training patches (generated, cached)"})
    val_patches: int = field(default=32, metadata={"help": "validation patches (other shapes) for keep-best"})
    checkpoint_every: int = field(
        default=100, metadata={"help": "steps between checkpoints", "resume": "free"}
    )
    eval_every: int = field(default=100, metadata={"help": "steps between validations", "resume": "free"})

    def validate(self):
        super().validate()
        if not (self.lr > 0 and 0 < self.decay <= 1):
            raise ValueError("lr must be > 0 and decay in (0, 1]")
        if self.train_patches < 1 or self.val_patches < 1:
            raise ValueError("train_patches and val_patches must be >= 1")


@dataclass
class CurveConfig(Config):
    """Curve extraction from a distance field (lengths in units of the resolution r)."""

    threshold: float = field(default=2.0, metadata={"help": "keep points with predicted d < threshold * r"})
    spacing: float = field(default=1.0, metadata={"help": "farthest-point spacing of kept points, in r"})
    corner_radius: float = field(default=5.0, metadata={"help": "PCA radius of corner detection, in r"})
    cornerness: float = field(
        default=0.25, metadata={"help": "corner when lambda_2 / lambda_1 of the neighbourhood exceeds it"}
    )
    link: float = field(default=3.0, metadata={"help": "clustering radius (connected components), in r"})
    node_spacing: float = field(
        default=4.0, metadata={"help": "polyline node spacing (DEF's split threshold), in r"}
    )
    min_points: int = field(default=5, metadata={"help": "drop clusters with fewer points"})
    opt_steps: int = field(default=100, metadata={"help": "Adam steps of the node-position energy (0: off)"})

    def validate(self):
        for k in ("threshold", "spacing", "corner_radius", "cornerness", "link", "node_spacing"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be > 0")
        if self.opt_steps < 0 or self.min_points < 1:
            raise ValueError("opt_steps must be >= 0 and min_points >= 1")
