"""Rotary position embeddings: the one helper every LLM package shares."""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dimension (transformers' RoPE pairing convention).

    RoPE at angle :math:`\\theta` is then ``x * cos + rotate_half(x) * sin``, with ``cos`` and ``sin``
    repeated over both halves.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
