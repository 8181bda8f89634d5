r"""Rotary embeddings: un-rotate keys to their pre-RoPE values and re-rotate them.

transformers applies :math:`k' = k \odot \cos + \mathrm{rot}(k) \odot \sin` with
:math:`\mathrm{rot}([k_1, k_2]) = [-k_2, k_1]` (``cos``/``sin`` may carry an attention scaling
:math:`a`, i.e. :math:`a\cos\theta, a\sin\theta`). The inverse is

.. math:: k = \frac{k' \odot \cos - \mathrm{rot}(k') \odot \sin}{\cos^2 + \sin^2}.
"""

from __future__ import annotations

import torch

from aquakv.config import UnsupportedLayoutError
from papercore.llm.rope import rotate_half


def rotate(k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE; ``k`` ``[B, H, T, D]``, ``cos``/``sin`` ``[T, D]`` (or broadcastable)."""
    return k * cos + rotate_half(k) * sin


def unrotate(k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotate` (exact up to rounding, for any attention scaling)."""
    return (k * cos - rotate_half(k) * sin) / (cos * cos + sin * sin)


class RopeTable:
    """cos/sin by absolute position from the model's own rotary module, grown on demand."""

    def __init__(self, rotary, head_dim: int):
        self.rotary, self.head_dim = rotary, head_dim
        self.cos = self.sin = None

    def check(self, device) -> None:
        """Raise :class:`UnsupportedLayoutError` unless the rotary module covers the whole head."""
        self.get(0, 1, device, torch.float32)

    @torch.no_grad()
    def get(self, start: int, end: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``cos, sin`` ``[end - start, D]`` cast to ``dtype`` on ``device``."""
        if self.cos is None or self.cos.shape[0] < end or self.cos.device != torch.device(device):
            n = max(end, 2 * (self.cos.shape[0] if self.cos is not None else 256))
            pos = torch.arange(n, device=device)[None]
            dummy = torch.zeros(1, 1, self.head_dim, device=device, dtype=torch.float32)
            cos, sin = self.rotary(dummy, pos)
            if cos.shape[-1] != self.head_dim:
                raise UnsupportedLayoutError(
                    f"partial rotary embeddings (rotary dim {cos.shape[-1]} < head_dim {self.head_dim}) "
                    "are not supported by the AQUA-KV cache"
                )
            self.cos, self.sin = cos[0].float(), sin[0].float()
        return self.cos[start:end].to(dtype), self.sin[start:end].to(dtype)

    @torch.no_grad()
    def gather(self, positions: torch.Tensor, end: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` at ``positions`` (any shape, each ``< end``): ``[*positions.shape, D]``."""
        self.get(0, end, device, torch.float32)
        idx = positions.to(self.cos.device)
        return self.cos[idx].to(dtype), self.sin[idx].to(dtype)
