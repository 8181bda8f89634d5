r"""DEF's networks.

**DEF-Points** (:class:`DGCNN`, Wang et al. 2019): ``depth`` EdgeConv blocks. Block :math:`l` finds
the ``k`` nearest neighbours :math:`j \in N(i)` of each point in its input features (xyz for the
first block, a dynamic graph after), and computes

.. math:: x_i^{l+1} = \max_{j \in N(i)} \phi_l\big([x_i^l,\; x_j^l - x_i^l]\big),

with :math:`\phi_l` a 1x1 conv, batch norm and LeakyReLU. The blocks' outputs are concatenated, a
global max-pool over points is appended to every point, and a per-point MLP
(``mlp`` -> ``mlp/2`` -> head channels; DEF: 512 -> 256) gives the output. Presets: ``d6w158`` (6 blocks, width 158,
k = 30, MLP 512, the paper's) and ``small`` (3 blocks, width 32, k = 16, MLP 64, CPU-sized). The kNN is
:func:`papercore.geometry.knn` (its Triton kernel on GPUs for xyz, torch otherwise).

**DEF-Image** (:class:`UNet`): a ResNet encoder (torchvision's when it imports, else the same
architecture built here; random init, trained from scratch), the first convolution at stride 1
and no max-pool (64 x 64 inputs keep their resolution, as DEF), a decoder of upsampling and
skip-concatenation blocks, and a 3x3 conv head.
"""

from __future__ import annotations

import torch
from torch import nn

from def3d.config import ModelConfig
from def3d.heads import make_head
from papercore.geometry import knn

__all__ = ["DGCNN", "UNet", "build_model"]


def _edge_features(x: torch.Tensor, k: int, coords: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, N, C]`` -> ``[B, N, k, 2C]`` edge features ``[x_i, x_j - x_i]``."""
    ref = x if coords is None else coords
    with torch.no_grad():
        _, idx = knn(
            ref.detach().contiguous(),
            ref.detach().contiguous(),
            k,
            backend="auto" if ref.shape[-1] == 3 else "torch",
        )
    B = x.shape[0]
    nb = x[torch.arange(B, device=x.device)[:, None, None], idx]
    xi = x[:, :, None].expand_as(nb)
    return torch.cat([xi, nb - xi], -1)


class EdgeConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.k = k
        self.lin = nn.Linear(2 * cin, cout, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x, coords=None):
        e = self.lin(_edge_features(x, self.k, coords))  # [B, N, k, C]
        B, N, K, C = e.shape
        e = self.act(self.bn(e.reshape(-1, C)).reshape(B, N, K, C))
        return e.max(2).values


class DGCNN(nn.Module):
    """Per-point outputs ``[B, N, channels]`` for clouds ``[B, N, in_channels]`` (xyz first)."""

    def __init__(
        self, channels: int, depth: int = 3, width: int = 32, k: int = 16, in_channels: int = 3, mlp: int = 64
    ):
        super().__init__()
        self.k = k
        self.blocks = nn.ModuleList(
            EdgeConv(in_channels if i == 0 else width, width, k) for i in range(depth)
        )
        emb = width * depth
        self.mlp = nn.Sequential(
            nn.Linear(2 * emb, mlp), nn.LayerNorm(mlp), nn.LeakyReLU(0.2),
            nn.Linear(mlp, mlp // 2), nn.LayerNorm(mlp // 2), nn.LeakyReLU(0.2),
            nn.Linear(mlp // 2, channels),
        )  # fmt: skip

    def forward(self, x):
        feats, h = [], x
        for i, blk in enumerate(self.blocks):
            h = blk(h, coords=x[..., :3].contiguous() if i == 0 else None)
            feats.append(h)
        f = torch.cat(feats, -1)
        g = f.max(1, keepdim=True).values.expand_as(f)
        return self.mlp(torch.cat([f, g], -1))


# ---------------------------------------------------------------------- UNet
class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, c, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        self.down = (
            None
            if stride == 1 and cin == c
            else nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
        )

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c),
        )  # fmt: skip
        self.down = (
            None
            if stride == 1 and cin == 4 * c
            else nn.Sequential(nn.Conv2d(cin, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


_LAYERS = {"resnet18": (_Basic, [2, 2, 2, 2]), "resnet34": (_Basic, [3, 4, 6, 3]), "resnet50": (_Bottleneck, [3, 4, 6, 3]),
           "resnet101": (_Bottleneck, [3, 4, 23, 3]), "resnet152": (_Bottleneck, [3, 8, 36, 3])}  # fmt: skip


def _resnet_stages(name: str, in_channels: int) -> tuple[nn.ModuleList, list[int]]:
    """Stem + 4 stages of a ResNet with a stride-1 stem and no max-pool; torchvision's modules when available."""
    try:
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        stages = [net.layer1, net.layer2, net.layer3, net.layer4]
        exp = 4 if name in ("resnet50", "resnet101", "resnet152") else 1
    except (ImportError, RuntimeError):
        block, counts = _LAYERS[name]
        exp = block.expansion
        stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        stages, cin = [], 64
        for i, (c, n) in enumerate(zip([64, 128, 256, 512], counts)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, c, 2 if (j == 0 and i > 0) else 1))
                cin = c * exp
            stages.append(nn.Sequential(*blocks))
    return nn.ModuleList([stem, *stages]), [64] + [c * exp for c in (64, 128, 256, 512)]


class UNet(nn.Module):
    """Per-pixel outputs ``[B, H, W, channels]`` for range images ``[B, in_channels, H, W]``."""

    def __init__(self, channels: int, encoder: str = "resnet18", width: int = 128, in_channels: int = 2):
        super().__init__()
        self.enc, enc_ch = _resnet_stages(encoder, in_channels)
        dec = [width, width // 2, width // 4, max(width // 8, 16)]
        self.up = nn.ModuleList()
        cin = enc_ch[-1]
        for skip, c in zip(enc_ch[-2::-1], dec):
            self.up.append(nn.Sequential(
                nn.Conv2d(cin + skip, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2),
                nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2),
            ))  # fmt: skip
            cin = c
        self.head = nn.Conv2d(cin, channels, 3, 1, 1)

    def forward(self, x):
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        h = skips.pop()
        for blk in self.up:
            s = skips.pop()
            h = nn.functional.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = blk(torch.cat([h, s], 1))
        return self.head(h).permute(0, 2, 3, 1)


def build_model(cfg: ModelConfig) -> tuple[nn.Module, object]:
    """The network and its head for ``cfg``."""
    head = make_head(cfg.head)
    if cfg.model == "points":
        return DGCNN(head.channels, cfg.depth, cfg.width, cfg.k, 4 if cfg.pca_channel else 3, cfg.mlp), head
    return UNet(head.channels, cfg.encoder, cfg.width), head
