"""The networks: the primitive transformer and the cleaning U-Net, with their losses.

**Primitive network.** The input of a 64x64 patch is three channels ``[ink, x * ink, y * ink]``
(CoordConv-like, coordinates in [0, 1]); a ResNet trunk (stride 4) gives a 16x16 feature map whose
cells, with a sinusoidal position code, are the memory of a transformer decoder. Its targets are
``n`` *fixed* sinusoidal query encodings (not learned, no DETR matching); slot ``i`` predicts one
primitive: a line ``(x1, y1, x2, y2, w, conf)`` or a quadratic Bézier ``(P0, P1, P2, w, conf)``,
coordinates in [0, 1] (× 64 px), width ``8 sigmoid(.)`` px.

**Sorted-slot loss.** The truth of a patch is canonicalised (each stroke's end points in
lexicographic order), sorted lexicographically and zero-padded to ``n``; slot ``i`` is compared
with truth ``i``: ``a BCE(conf, present) + (1 - a) mean_present(|dp| + dp^2)``. The order of the
truth given to the loss does not matter (it is sorted first). ``loss="mapping"`` replaces the
parameter term by the closed-form integrated squared distance between the two curves,
``int_0^1 |B(t) - B'(t)|^2 dt = sum_ij G_ij <d_i, d_j>`` (``G`` the Gram matrix of the degree-2
Bernstein basis, ``d_i`` the control point differences) plus ``0.2`` times the width MSE.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vectorize.config import CleanConfig, NetConfig

PATCH = 64
MAX_WIDTH = 8.0
GRAM = torch.tensor([[6.0, 3.0, 1.0], [3.0, 4.0, 3.0], [1.0, 3.0, 6.0]]) / 30.0  # int B_i B_j dt, degree 2


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """``[n, d]`` sinusoidal position encodings."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class _Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())  # fmt: skip

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.skip(x))


def coord_input(ink: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` ink -> ``[B, 3, H, W]`` = ``[ink, x ink, y ink]``."""
    B, H, W = ink.shape
    y = (torch.arange(H, device=ink.device, dtype=ink.dtype) + 0.5) / H
    x = (torch.arange(W, device=ink.device, dtype=ink.dtype) + 0.5) / W
    return torch.stack([ink, ink * x[None, None, :], ink * y[None, :, None]], 1)


class PrimitiveNet(nn.Module):
    """Patch ink ``[B, 64, 64]`` -> primitives ``[B, n, 6 or 8]`` (params in px, width, conf logit)."""

    def __init__(self, cfg: NetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or NetConfig()
        c = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.trunk = nn.Sequential(*[_Block(c, c, 2 if i == 0 else 1) for i in range(cfg.blocks)])
        self.proj = nn.Conv2d(c, cfg.d_model, 1)
        layer = nn.TransformerDecoderLayer(cfg.d_model, cfg.heads, cfg.ffn, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.register_buffer("queries", sinusoidal(cfg.slots, cfg.d_model), persistent=False)
        self.register_buffer("memory_pos", sinusoidal((PATCH // 4) ** 2, cfg.d_model), persistent=False)
        self.n_params = 4 if cfg.primitive == "lines" else 6
        self.head = nn.Sequential(nn.Linear(cfg.d_model, 2 * cfg.d_model), nn.ReLU(),
                                  nn.Linear(2 * cfg.d_model, self.n_params + 2))  # fmt: skip

    def forward(self, ink: torch.Tensor) -> torch.Tensor:
        f = self.proj(self.trunk(self.stem(coord_input(ink))))  # [B, d, 16, 16]
        mem = f.flatten(2).transpose(1, 2) + self.memory_pos
        tgt = self.queries.expand(len(ink), -1, -1)
        h = self.head(self.decoder(tgt, mem))
        pts = torch.sigmoid(h[..., : self.n_params]) * PATCH
        width = torch.sigmoid(h[..., self.n_params : self.n_params + 1]) * MAX_WIDTH
        return torch.cat([pts, width, h[..., -1:]], -1)


def canonical_targets(drawings, slots: int, primitive: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted, zero-padded truth ``[B, n, p+1]`` (params, width) and its presence mask ``[B, n]``.

    Each stroke is oriented so that its first end point is lexicographically smaller; strokes are
    sorted lexicographically by their parameters. Lines become Béziers (midpoint control) for a
    curve network; a curve network's truth keeps the first ``n`` strokes in sorted order.
    """
    k = 5 if primitive == "lines" else 7
    out = np.zeros((len(drawings), slots, k), np.float32)
    mask = np.zeros((len(drawings), slots), bool)
    for b, d in enumerate(drawings):
        P = d.lines if primitive == "lines" else d.as_curves()
        if primitive == "lines" and len(d.curves):
            from vectorize.drawing import curves_to_lines

            P = np.concatenate([P, curves_to_lines(d.curves)])
        P = P.copy()
        flip = (P[:, 0] > P[:, k - 3]) | ((P[:, 0] == P[:, k - 3]) & (P[:, 1] > P[:, k - 2]))
        if k == 5:
            P[flip] = P[flip][:, [2, 3, 0, 1, 4]]
        else:
            P[flip] = P[flip][:, [4, 5, 2, 3, 0, 1, 6]]
        order = np.lexsort(P[:, ::-1].T)
        P = P[order][:slots]
        out[b, : len(P)], mask[b, : len(P)] = P, True
    return torch.from_numpy(out), torch.from_numpy(mask)


def slot_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cfg: NetConfig) -> dict:
    """The sorted-slot loss (or the mapping loss) of predictions ``[B, n, p+2]`` against sorted
    truth ``[B, n, p+1]``. Returns ``{"loss", "bce", "params"}``."""
    conf = pred[..., -1]
    bce = nn.functional.binary_cross_entropy_with_logits(conf, mask.float())
    m = mask.float()
    denom = m.sum().clamp_min(1)
    p, t = pred[..., :-1] / PATCH, target / PATCH
    if cfg.loss == "slots":
        diff = p - t
        params = ((diff.abs() + diff**2).sum(-1) * m).sum() / denom
    else:
        npts = (p.shape[-1] - 1) // 2
        dp = (p[..., : 2 * npts] - t[..., : 2 * npts]).unflatten(-1, (npts, 2))
        if npts == 2:  # a line is the Bézier with its midpoint as control point
            dp = torch.stack([dp[..., 0, :], dp.mean(-2), dp[..., 1, :]], -2)
        G = GRAM.to(dp)
        dist = torch.einsum("ij,bnid,bnjd->bn", G, dp, dp)
        wmse = (p[..., -1] - t[..., -1]) ** 2
        params = ((dist + 0.2 * wmse) * m).sum() / denom
    a = cfg.conf_weight
    return {"loss": a * bce + (1 - a) * params, "bce": bce.detach(), "params": params.detach()}


class CleanNet(nn.Module):
    """A small U-Net: image ``[B, H, W]`` (1 = paper) -> (extraction logits, restored ink), both ``[B, H, W]``.
    ``H`` and ``W`` must be multiples of ``2 ** levels``."""

    def __init__(self, cfg: CleanConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CleanConfig()

        def conv(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 1, 1), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o, o, 3, 1, 1),
                                 nn.BatchNorm2d(o), nn.ReLU())  # fmt: skip

        ch = [cfg.clean_channels * 2**i for i in range(cfg.clean_levels + 1)]
        self.down = nn.ModuleList(
            [conv(1, ch[0])] + [conv(ch[i], ch[i + 1]) for i in range(cfg.clean_levels)]
        )
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, 2) for i in range(cfg.clean_levels)])
        self.merge = nn.ModuleList([conv(2 * ch[i], ch[i]) for i in range(cfg.clean_levels)])
        self.extract = nn.Conv2d(ch[0], 1, 1)
        self.restore = nn.Conv2d(ch[0], 1, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (1 - image)[:, None]
        skips = []
        for i, d in enumerate(self.down):
            x = d(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(self.cfg.clean_levels)):
            x = self.merge[i](torch.cat([self.up[i](x), skips[i]], 1))
        return self.extract(x)[:, 0], torch.sigmoid(self.restore(x))[:, 0]

    @torch.no_grad()
    def clean(self, image: np.ndarray, tile: int = 256) -> np.ndarray:
        """Cleaned ink ``[H, W]`` of a paper image in [0, 1] (any size; tiled, padded with paper)."""
        self.eval()
        dev = next(self.parameters()).device
        H, W = image.shape
        m = 2**self.cfg.clean_levels
        Hp, Wp = -(-H // m) * m, -(-W // m) * m
        img = np.ones((Hp, Wp), np.float32)
        img[:H, :W] = image
        out = np.zeros((Hp, Wp), np.float32)
        for y in range(0, Hp, tile):
            for x in range(0, Wp, tile):
                t = torch.as_tensor(img[y : y + tile, x : x + tile], device=dev)[None]
                mask, ink = self(t)
                out[y : y + tile, x : x + tile] = (ink * (mask > 0)).cpu().numpy()[0]
        return out[:H, :W]
