r"""The fixed (non-learned) upsampler U of LaplatGAN.

Every point :math:`x_i` gets one new point at the mean of its ``k`` nearest neighbours, itself
included: :math:`U(X) = X \cup \{\frac1k \sum_{j \in \mathcal N_k(x_i)} x_j\}_i`, so the point count
doubles and the original points are kept (first, in their order).
"""

from __future__ import annotations

import torch

from papercore.geometry import knn


def knn_upsample(x: torch.Tensor, k: int = 7, *, backend: str = "auto") -> torch.Tensor:
    """``[B, N, 3] -> [B, 2N, 3]`` (or ``[N, 3] -> [2N, 3]``): the originals, then the kNN means."""
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"knn_upsample takes clouds [B, N, 3], got {tuple(x.shape)}")
    if not 1 <= k <= x.shape[1]:
        raise ValueError(f"k must be in [1, {x.shape[1]}] (the cloud's size), got {k}")
    _, idx = knn(x, x, k, backend=backend)
    means = torch.gather(
        x[:, None].expand(-1, x.shape[1], -1, -1), 2, idx[..., None].expand(-1, -1, -1, 3)
    ).mean(2)
    out = torch.cat([x, means], 1)
    return out[0] if single else out
