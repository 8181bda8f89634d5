"""The kernel layout of a SpQR layer: the stored format rearranged once for the fast GEMV kernel.

The stored format (:mod:`spqr.quantized_linear`) packs each row's ``wbits``-bit codes as one
bitstream, so a 3-bit code can straddle two 32-bit words and every code needs a variable shift.
The fast kernel (:mod:`spqr.kernels._fast`) reads instead:

* ``lo`` int32 ``[O, I / 16]``: the 2 low bits of 16 consecutive (permuted) codes per word;
* ``hi`` int32: the ``wbits - 2`` high bits, 32 one-bit parts per word (3-bit) or 16 two-bit
  parts per word (4-bit); empty for 2-bit codes;
* ``stats`` uint8 ``[O, G]``: the scale code in the low nibble and the zero code in the high one
  (second-level codes of at most 4 bits; the second-level fp16 tensors are used as stored), or the
  fp16 ``scale`` and ``zero`` when the statistics are kept in 16 bits;
* ``delta`` float32 ``[nnz]``: each outlier value minus the dense value at its position, so the
  kernel adds ``delta * x[c]`` on top of the dense product (same CSR row offsets and column
  indices; float32 because the difference of an fp16 value and a float32 dense value is not an
  fp16 number, 2 more bytes per outlier than stored).

Both layouts hold the same bits of codes and statistics (the high/low split wastes nothing), so the
kernel reads about what the stored format holds. Built by :func:`build_layout` (torch operations,
any device) and cached on the layer until its buffers move or are reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.kernels.packing import unpack_bits
from spqr.config import FP16_STATS


@dataclass
class KernelLayout:
    lo: torch.Tensor
    hi: torch.Tensor
    hi_bits: int
    stats: torch.Tensor | None  # uint8 [O, G] when the statistics are quantized
    scale16: torch.Tensor | None  # fp16 [O, G] when they are not
    zero16: torch.Tensor | None
    delta: torch.Tensor  # float32 [nnz]
    perm: torch.Tensor  # int64 [I], for gathering x[:, perm] once per call
    pcols: torch.Tensor  # int32 [nnz]: each outlier's column in the permuted order
    codes_ptr: int  # data_ptr of the layer's codes when built (a moved layer rebuilds)

    @property
    def nbytes(self) -> int:
        ts = (self.lo, self.hi, self.stats, self.scale16, self.zero16, self.delta)  # what the GEMV reads
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


def fast_supported(layer) -> bool:
    """Codes of 2 to 4 bits, groups that are whole multiples of 16 columns, asymmetric statistics
    that are either quantized to at most 4 bits (both) or kept in fp16 (both)."""
    if not 2 <= layer.wbits <= 4 or layer.groupsize % 16 or layer.sym:
        return False
    s, z = layer.qq_scale_bits, layer.qq_zero_bits
    return (s <= 4 and z <= 4) or (s >= FP16_STATS and z >= FP16_STATS)


def _pack_fields(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack the last dimension (``32 // bits`` fields of ``bits`` bits, field ``i`` at bit ``i * bits``) into int32."""
    shifts = torch.arange(values.shape[-1], device=values.device, dtype=torch.int64) * bits
    word = (values.to(torch.int64) << shifts).sum(-1)
    return torch.where(word >= 2**31, word - 2**32, word).to(torch.int32)


@torch.no_grad()
def build_layout(layer) -> KernelLayout:
    """The :class:`KernelLayout` of ``layer`` (see the module doc); needs :func:`fast_supported`."""
    if not fast_supported(layer):
        raise ValueError("this layer's configuration has no fast kernel layout (see fast_supported)")
    o, n = layer.out_features, layer.in_features
    groups = n // layer.groupsize
    codes = unpack_bits(layer.codes, layer.wbits, n).to(torch.int32)  # [O, I], permuted order
    lo = _pack_fields((codes & 3).view(o, n // 16, 16), 2)
    hb = layer.wbits - 2
    if hb == 1:
        hi = _pack_fields((codes >> 2).view(o, n // 32, 32), 1) if n % 32 == 0 else None
        if hi is None:  # pad the last word
            pad = torch.zeros(o, 32 - n % 32, dtype=codes.dtype, device=codes.device)
            hi = _pack_fields(torch.cat([codes >> 2, pad], 1).view(o, -1, 32), 1)
    elif hb == 2:
        hi = _pack_fields((codes >> 2).view(o, n // 16, 16), 2)
    else:
        hi = torch.zeros(1, dtype=torch.int32, device=codes.device)
    stats = scale16 = zero16 = None
    if layer.qq_scale_bits >= FP16_STATS:
        scale16, zero16 = layer.scale.contiguous(), layer.zero.contiguous()
    else:
        sc = unpack_bits(layer.scale_codes, layer.qq_scale_bits, o * groups)
        zc = unpack_bits(layer.zero_codes, layer.qq_zero_bits, o * groups)
        stats = (sc | (zc << 4)).to(torch.uint8).view(o, groups)
    delta = layer.outlier_values.float()
    pcols = torch.zeros(0, dtype=torch.int32, device=codes.device)
    if delta.numel():
        scale = layer.statistic("scale").repeat_interleave(layer.groupsize, 1)
        zero = layer.statistic("zero").repeat_interleave(layer.groupsize, 1)
        inv = torch.empty_like(layer.perm, dtype=torch.int64)
        inv[layer.perm.long()] = torch.arange(n, device=inv.device)
        offsets = layer.outlier_row_offsets.long()
        rows = torch.repeat_interleave(torch.arange(o, device=inv.device), offsets[1:] - offsets[:-1])
        k = inv[layer.outlier_col_indices.long()]
        dense = scale[rows, k] * (codes[rows, k].float() - zero[rows, k])
        delta = layer.outlier_values.float() - dense
        pcols = k.to(torch.int32)
    return KernelLayout(
        lo, hi, hb, stats, scale16, zero16, delta, layer.perm.long(), pcols, layer.codes.data_ptr()
    )


def layout_of(layer) -> KernelLayout:
    """The cached layout of ``layer``, built on first use and rebuilt when its codes moved."""
    cached = getattr(layer, "_kernel_layout", None)
    if cached is None or cached.codes_ptr != layer.codes.data_ptr():
        cached = build_layout(layer)
        layer._kernel_layout = cached
    return cached
