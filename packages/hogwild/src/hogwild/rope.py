"""Rotary position embeddings as a group of rotations.

RoPE rotates each pair of channels ``(x_i, x_{i+d/2})`` of a head vector by the angle
``p * inv_freq[i]``. Writing ``R(p)`` for that rotation,

* ``R(a) R(b) = R(a + b)`` (so a key stored at local position ``j`` can be moved to ``o + j``
  by one more rotation ``R(o)``), and
* ``<R(p) q, R(o + j) k> = <R(p - o) q, R(j) k>`` (so instead of moving the keys of a block that
  starts at ``o``, the query is rotated by ``p - o``: the query-rotation trick).

Scaled variants (linear, llama3, yarn) change only ``inv_freq``; yarn (and longrope) also
multiply transformers' cos/sin by an ``attention_scaling`` factor ``m``. That factor must be
applied exactly once (transformers applies it when the model rotates q and k), so every
*re-rotation* here is a pure rotation: :func:`rotate` never multiplies by ``m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.llm.rope import rotate_half

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn")


@dataclass
class RopeSpec:
    """The inverse frequencies (float32, ``[head_dim // 2]``) and the attention scaling of a model's RoPE."""

    inv_freq: torch.Tensor
    attention_scaling: float = 1.0
    rope_type: str = "default"

    @property
    def head_dim(self) -> int:
        return 2 * self.inv_freq.numel()

    def to(self, device) -> RopeSpec:
        return RopeSpec(
            self.inv_freq.to(device=device, dtype=torch.float32), self.attention_scaling, self.rope_type
        )

    @classmethod
    def from_config(cls, config, device=None) -> RopeSpec:
        """Build from a transformers config through transformers' own ``ROPE_INIT_FUNCTIONS``."""
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        params = getattr(config, "rope_parameters", None) or {}
        rope_type = params.get("rope_type", params.get("type", "default")) or "default"
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise NotImplementedError(
                f"rope_type {rope_type!r} is not supported (its frequencies depend on the sequence length); "
                f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
            )
        if rope_type == "default":
            base = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
            dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            dim = int(dim * params.get("partial_rotary_factor", 1.0))
            inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
            scaling = 1.0
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, device)
        return cls(inv_freq.to(device=device, dtype=torch.float32), float(scaling), rope_type)

    @classmethod
    def from_model(cls, model) -> RopeSpec:
        """Read the buffers a loaded transformers model actually uses (``model.model.rotary_emb``)."""
        rot = getattr(getattr(model, "model", None), "rotary_emb", None)
        if rot is None or not hasattr(rot, "inv_freq"):
            raise NotImplementedError(
                f"{type(model).__name__} has no `model.rotary_emb.inv_freq`: hogwild needs a RoPE decoder "
                "(Llama, Mistral, Qwen2, Qwen3)"
            )
        rope_type = getattr(rot, "rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise NotImplementedError(
                f"rope_type {rope_type!r} is not supported; supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
            )
        return cls(
            rot.inv_freq.detach().float().clone(), float(getattr(rot, "attention_scaling", 1.0)), rope_type
        )


def cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float = 1.0, dtype=torch.float32):
    """``cos, sin`` (float32 unless ``dtype``) of shape ``positions.shape + [head_dim]`` (times ``scaling``)."""
    freqs = positions.to(dtype)[..., None] * inv_freq.to(device=positions.device, dtype=dtype)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * scaling, emb.sin() * scaling


def rotate(x: torch.Tensor, offset, inv_freq: torch.Tensor) -> torch.Tensor:
    """Pure rotation ``R(offset) x`` (no attention scaling), computed in float32, returned in x's dtype.

    ``offset`` is an int or an integer tensor broadcastable to ``x.shape[:-1]`` (float64 inputs are
    rotated in float64).
    """
    if not torch.is_tensor(offset):  # a fill kernel, not a host copy: safe inside CUDA-graph capture
        offset = torch.full((), offset, dtype=torch.long, device=x.device)
    ct = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos, sin = cos_sin(offset.to(x.device), inv_freq, dtype=ct)
    xf = x.to(ct)
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def apply_rope(x: torch.Tensor, positions, spec: RopeSpec) -> torch.Tensor:
    """What a transformers model does to q or k at ``positions``: ``m * R(p) x`` (m = attention scaling)."""
    if not torch.is_tensor(positions):
        positions = torch.as_tensor(positions).to(x.device)
    cos, sin = cos_sin(positions.to(x.device), spec.inv_freq, spec.attention_scaling)
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)
