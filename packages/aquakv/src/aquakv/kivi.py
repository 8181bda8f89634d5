r"""KIVI baseline (Liu et al., ICML 2024) in the same harness: asymmetric min-max integer codes,
keys per channel (groups of ``group`` tokens), values per token (groups of ``group`` channels),
an fp residual window; codes bit-packed, scale and zero in fp16.

Per group with min :math:`m` and max :math:`M`: :math:`s = (M - m) / (2^b - 1)`,
:math:`q = \mathrm{round}((x - m)/s)`, :math:`\hat x = q s + m`. Keys are quantized post-RoPE, as in KIVI.
When the residual buffer reaches ``residual`` tokens, its oldest multiple of ``group`` tokens is
quantized (keys need whole token groups); the rest stays in the buffer.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache

from aquakv.cache import _Chunked, check_supported, kv_layout
from papercore.kernels.packing import pack_bits, unpack_bits


def _quant(x: torch.Tensor, bits: int, dim: int):
    """Min-max quantize along ``dim`` (the group axis); returns (packed codes, scale, zero)."""
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    scale = ((hi - lo) / (2**bits - 1)).clamp_min(1e-8).half()
    lo = lo.half()
    q = torch.round((x - lo.float()) / scale.float()).clamp(0, 2**bits - 1).to(torch.int32)
    return pack_bits(q.reshape(*q.shape[:-1], -1), bits, validate=False), scale, lo


class _KiviLayer(_Chunked):
    def __init__(self):
        super().__init__()
        self.q: list = []  # per chunk: (k codes, k scale, k zero, v codes, v scale, v zero, tokens)

    def nbytes(self):
        out = super().nbytes()
        out["quantized"] = sum(t.numel() * t.element_size() for c in self.q for t in c[:6])
        return out

    def _map_batch(self, fn):
        super()._map_batch(fn)
        self.q = [tuple(fn(t) for t in c[:6]) + (c[6],) for c in self.q]


class KIVICache(Cache):
    """KIVI-``bits`` cache: per-channel keys, per-token values, group ``group``, fp residual window."""

    def __init__(self, model, bits: int = 2, group: int = 32, residual: int = 128):
        if bits not in (1, 2, 3, 4, 8):
            raise ValueError(f"KIVI bits must be 1, 2, 3, 4 or 8, got {bits}")
        check_supported(model.config)
        self.num_layers, self.num_kv_heads, self.head_dim = kv_layout(model.config)
        if self.head_dim % group:
            raise ValueError(f"KIVI group {group} must divide head_dim {self.head_dim}")
        self.bits, self.group, self.residual = bits, group, max(residual, group)
        super().__init__(layers=[_KiviLayer() for _ in range(self.num_layers)])

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        layer: _KiviLayer = self.layers[layer_idx]
        if not layer.is_initialized:
            layer.lazy_initialization(key_states, value_states)
        old = [self._dequant(c, key_states.dtype) for c in layer.q]
        buf_k = torch.cat([layer.buf_k, key_states], 2)
        buf_v = torch.cat([layer.buf_v, value_states], 2)
        keys = torch.cat([*(o[0] for o in old), buf_k], 2)
        vals = torch.cat([*(o[1] for o in old), buf_v], 2)
        n = buf_k.shape[2]
        if n >= self.residual:
            m = n // self.group * self.group
            layer.q.append(self._quant(buf_k[:, :, :m], buf_v[:, :, :m]))
            layer.num_quantized += m
            buf_k, buf_v = buf_k[:, :, m:], buf_v[:, :, m:]
        layer.buf_k, layer.buf_v = buf_k, buf_v
        layer.num_slots += key_states.shape[2]
        return keys, vals

    def _quant(self, k, v):
        b, h, t, d = k.shape
        g = self.group
        # keys: per channel over groups of g tokens -> [B, H, t/g, D, g] (group axis last)
        kg = k.float().view(b, h, t // g, g, d).transpose(3, 4)
        kc, ks, kz = _quant(kg, self.bits, -1)
        vg = v.float().view(b, h, t, d // g, g)  # values: per token over groups of g channels
        vc, vs, vz = _quant(vg, self.bits, -1)
        return kc, ks, kz, vc, vs, vz, t

    def _dequant(self, c, dtype):
        kc, ks, kz, vc, vs, vz, t = c
        b, h = kc.shape[:2]
        d, g = self.head_dim, self.group
        kq = unpack_bits(kc, self.bits, g).float().view(b, h, t // g, d, g)
        k = (kq * ks.float() + kz.float()).transpose(3, 4).reshape(b, h, t, d)
        vq = unpack_bits(vc, self.bits, g).float().view(b, h, t, d // g, g)
        v = (vq * vs.float() + vz.float()).reshape(b, h, t, d)
        return k.to(dtype), v.to(dtype)

    def memory(self) -> dict[str, int]:
        out = {"quantized": 0, "fp": 0}
        for layer in self.layers:
            nb = layer.nbytes()
            out["quantized"] += nb["quantized"]
            out["fp"] += nb["fp"]
        out["quantized_tokens"] = self.layers[0].num_quantized
        return out

    def measured_bytes_per_token(self) -> float:
        m = self.memory()
        b = self.layers[0].q[0][0].shape[0] if self.layers[0].q else 1
        return m["quantized"] / max(m["quantized_tokens"] * b, 1)


def hf_quantized_cache(model, nbits: int = 2, backend: str | None = None):
    """transformers' own ``QuantizedCache`` (quanto, then hqq), or None when no backend is installed."""
    from transformers.cache_utils import QuantizedCache

    for name in [backend] if backend else ["quanto", "hqq"]:
        try:
            return QuantizedCache(name, model.config, nbits=nbits)
        except Exception:  # ImportError of the backend, or an unsupported option
            continue
    return None
