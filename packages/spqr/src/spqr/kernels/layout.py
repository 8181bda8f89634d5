"""The kernel layout of a SpQR layer: the stored format rearranged once for the fast kernels.

The stored format (:mod:`spqr.quantized_linear`) packs each row's ``wbits``-bit codes as one
bitstream in the permuted column order. The fast kernels (:mod:`spqr.kernels._fast`) give each
thread one output row and a *slab* of ``CK`` consecutive permuted columns at a time, and want

* that thread's codes as one aligned 16-byte vector per plane, so a warp reads 512 contiguous
  bytes (32 rows) per plane: ``planes`` int32 ``[NB, P, O, 4]``. Word ``t`` of a plane holds the
  codes of columns ``4 j + t`` of the slab, ``j = 0 .. F-1``, as one ``P * 32``-bit stream per
  ``t`` (``wbits = 3``: 32 codes in 3 words, two of them straddle a word boundary; 4: 8 codes in 1
  word; 2: 16 codes in 1 word). Columns interleaved by 4 make the four ``x`` values a thread needs
  for one ``j`` one 16-byte load;
* the statistic codes of the slab's groups in one load: ``stats`` uint8 ``[NB, O, GPS]`` (scale
  code in the low nibble, zero code in the high one), or the fp16 first-level statistics as
  float32 ``(scale, zero)`` pairs ``[NB, O, GPS, 2]`` when they are not quantized;
* the second-level statistics as float32 multiply-add coefficients ``[NB, O / beta2, GPS, 4]``:
  ``scale = a_s * f(c_s) + b_s`` and ``zero = a_z * f(c_z) + b_z``, where ``f(c) = 2^23 + c 2^19``
  is the float the kernel gets from a code by OR-ing it into the mantissa of ``2^23`` (so
  ``a = qq_scale * 2^-19`` and ``b = -qq_scale * (qq_zero + 16)``): no integer-to-float conversion;
* ``xmul`` float32 ``[CK]``: the power of two ``2^-PP`` that undoes the bit position ``PP`` of
  each slab column's code inside the mantissa (see :mod:`spqr.kernels._fast`);
* ``delta`` float32 ``[nnz]``: each outlier value minus the dense value at its position, so the
  kernel adds ``delta * x[c]`` on top of the dense product (CSR row offsets and original column
  indices as stored), and ``pcols``, the outliers' permuted columns, for the dequantize path.

Slabs are ``CK = 4 F`` columns (128 for 3-bit codes, 32 for 4-bit, 64 for 2-bit); a group of
``beta1`` columns must divide a slab or be a multiple of it (``GPS = max(1, CK / beta1)`` groups
per slab). A last partial slab is padded with zero codes (and zero statistics). The planes hold
the same bits as the stored codes; built by :func:`build_layout` (torch operations, any device)
and cached on the layer until its buffers move or are reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.kernels.packing import unpack_bits
from spqr.config import FP16_STATS

FIELDS = {2: 16, 3: 32, 4: 8}  # codes per thread word-set (F)
PLANES = {2: 1, 3: 3, 4: 1}  # 32-bit words per thread word-set (P)
SLOTS = {2: 4, 3: 3, 4: 2}  # codes that share one shifted copy of a word ("view") in the kernel
PMIN = {2: 15, 3: 14, 4: 15}  # the mantissa bit of a view's first code


@dataclass
class KernelLayout:
    planes: torch.Tensor  # int32 [NB, P, O, 4]
    stats: torch.Tensor | None  # uint8 [NB, O, GPS], quantized statistics
    coef: torch.Tensor  # float32 [NB, O / beta2, GPS, 4] (quantized) or [NB, O, GPS, 2] (fp16 statistics)
    xmul: torch.Tensor  # float32 [CK]
    delta: torch.Tensor  # float32 [nnz]
    pcols: torch.Tensor  # int32 [nnz]: each outlier's column in the permuted order (dequantize path)
    wbits: int
    num_slabs: int  # NB
    groups_per_slab: int  # GPS
    codes_ptr: int  # data_ptr of the layer's codes when built (a moved layer rebuilds)

    @property
    def slab(self) -> int:
        return 4 * FIELDS[self.wbits]

    @property
    def nbytes(self) -> int:
        ts = (self.planes, self.stats, self.coef, self.delta)  # what the GEMV reads of the layout
        return sum(t.numel() * t.element_size() for t in ts if t is not None)


def fast_supported(layer) -> bool:
    """Codes of 2 to 4 bits; groups of a multiple of 16 columns that divide the slab or are a
    multiple of it (any power of two >= 16); asymmetric statistics that are either quantized to at
    most 4 bits (both) or kept in fp16 (both)."""
    if not 2 <= layer.wbits <= 4 or layer.groupsize % 16 or layer.sym:
        return False
    ck, gs = 4 * FIELDS[layer.wbits], layer.groupsize
    if ck % gs and gs % ck:
        return False
    s, z = layer.qq_scale_bits, layer.qq_zero_bits
    return (s <= 4 and z <= 4) or (s >= FP16_STATS and z >= FP16_STATS)


def code_slot(j: int, wbits: int) -> int:
    """Position (0 .. SLOTS-1) of code ``j`` of a thread's bitstream inside its view; the kernel's
    ``_slot`` computes the same."""
    p, s = divmod(wbits * j, 32)
    if s + wbits > 32:  # straddles two words: extracted on its own, at PMIN
        return 0
    s0 = (wbits - (32 * p) % wbits) % wbits  # first code that starts in word p
    return ((s - s0) // wbits) % SLOTS[wbits]


def _pack_streams(codes: torch.Tensor, wbits: int) -> torch.Tensor:
    """``[..., F]`` codes -> ``[..., P]`` int32 words, code ``j`` at bits ``[wbits j, wbits j + wbits)``."""
    f, p = codes.shape[-1], PLANES[wbits]
    words = torch.zeros(*codes.shape[:-1], p, dtype=torch.int64, device=codes.device)
    for j in range(f):
        for w in range(p):
            sh = wbits * j - 32 * w
            if -wbits < sh < 32:
                part = codes[..., j] << sh if sh >= 0 else codes[..., j] >> -sh
                words[..., w] |= part & 0xFFFFFFFF
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


@torch.no_grad()
def build_layout(layer) -> KernelLayout:
    """The :class:`KernelLayout` of ``layer`` (see the module doc); needs :func:`fast_supported`."""
    if not fast_supported(layer):
        raise ValueError("this layer's configuration has no fast kernel layout (see fast_supported)")
    wbits, o, n, beta1 = layer.wbits, layer.out_features, layer.in_features, layer.groupsize
    dev = layer.codes.device
    f = FIELDS[wbits]
    ck = 4 * f
    gps = max(1, ck // beta1)
    nb = -(-n // ck)
    codes = unpack_bits(layer.codes, wbits, n).to(torch.int64)  # [O, I], permuted order
    padded = torch.nn.functional.pad(codes, (0, nb * ck - n))
    per_thread = padded.view(o, nb, f, 4).permute(1, 0, 3, 2)  # [NB, O, t, j]
    planes = _pack_streams(per_thread, wbits).permute(0, 3, 1, 2).contiguous()  # [NB, P, O, 4]
    groups = n // beta1
    # group of each (slab, group-in-slab); past the last group: a padded group with zero statistics
    gidx = (
        torch.arange(nb, device=dev)[:, None] * ck + torch.arange(gps, device=dev)[None, :] * (ck // gps)
    ) // beta1
    gvalid = gidx < groups
    gidx = gidx.clamp(max=groups - 1)
    stats = None
    if layer.qq_scale_bits >= FP16_STATS:
        s = torch.where(gvalid, layer.scale.float()[:, gidx], 0.0)  # [O, NB, GPS]
        z = layer.zero.float()[:, gidx]
        coef = torch.stack([s, z], -1).permute(1, 0, 2, 3).contiguous()
    else:
        sc = unpack_bits(layer.scale_codes, layer.qq_scale_bits, o * groups).view(o, groups)
        zc = unpack_bits(layer.zero_codes, layer.qq_zero_bits, o * groups).view(o, groups)
        stats = (sc | (zc << 4)).to(torch.uint8)[:, gidx].permute(1, 0, 2).contiguous()
        sqs, sqz = layer.scale_qq_scale.float(), layer.scale_qq_zero.float()
        zqs, zqz = layer.zero_qq_scale.float(), layer.zero_qq_zero.float()
        coef = torch.stack([sqs * 2.0**-19, -sqs * (sqz + 16.0), zqs * 2.0**-19, -zqs * (zqz + 16.0)], -1)[
            :, gidx
        ]  # [O / beta2, NB, GPS, 4]
        coef = torch.where(gvalid[None, :, :, None], coef, 0.0).permute(1, 0, 2, 3).contiguous()
    pmin = PMIN[wbits]
    xmul = torch.tensor(
        [2.0 ** -(pmin + wbits * code_slot(q // 4, wbits)) for q in range(ck)],
        dtype=torch.float32,
        device=dev,
    )
    delta = layer.outlier_values.float()
    pcols = torch.zeros(0, dtype=torch.int32, device=dev)
    if delta.numel():
        scale = layer.statistic("scale").repeat_interleave(beta1, 1)
        zero = layer.statistic("zero").repeat_interleave(beta1, 1)
        inv = torch.empty_like(layer.perm, dtype=torch.int64)
        inv[layer.perm.long()] = torch.arange(n, device=dev)
        offsets = layer.outlier_row_offsets.long()
        rows = torch.repeat_interleave(torch.arange(o, device=dev), offsets[1:] - offsets[:-1])
        k = inv[layer.outlier_col_indices.long()]
        dense = scale[rows, k] * (codes[rows, k].float() - zero[rows, k])
        delta = layer.outlier_values.float() - dense
        pcols = k.to(torch.int32)
    return KernelLayout(planes, stats, coef, xmul, delta, pcols, wbits, nb, gps, layer.codes.data_ptr())


def layout_of(layer) -> KernelLayout:
    """The cached layout of ``layer``, built on first use and rebuilt when its codes moved."""
    cached = getattr(layer, "_kernel_layout", None)
    if cached is None or cached.codes_ptr != layer.codes.data_ptr():
        cached = build_layout(layer)
        layer._kernel_layout = cached
    return cached
