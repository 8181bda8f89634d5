"""The kernel layout of a SpQR layer: the form a :class:`~spqr.QuantizedLinear` holds in memory.

The stored format (:mod:`spqr.quantized_linear`, what checkpoints hold) packs each row's
``wbits``-bit codes as one bitstream in the permuted column order. The fast kernels
(:mod:`spqr.kernels._fast`) give each thread one output row and a *slab* of ``CK`` consecutive
permuted columns at a time. A layer whose configuration has a kernel layout
(:func:`fast_supported`) is converted once, when it is quantized or loaded
(:meth:`~spqr.QuantizedLinear.to_kernel_layout_`): its stored buffers are **replaced** by the
buffers below, so the layer holds one copy of its weight. ``state_dict()`` (and so saving) converts
back to the stored format (:func:`to_stored`), bit for bit. The buffers:

* ``planes`` int32 ``[NB, P, O, 4]``: a thread's codes as one aligned 16-byte vector per plane, so
  a warp reads 512 contiguous bytes (32 rows) per plane. Word ``t`` of a plane holds the codes of
  columns ``4 j + t`` of the slab, ``j = 0 .. F-1``, as one ``P * 32``-bit stream per ``t``
  (``wbits = 3``: 32 codes in 3 words, two of them straddle a word boundary; 4: 8 codes in 1 word;
  2: 16 codes in 1 word). Columns interleaved by 4 make the four ``x`` values a thread needs for
  one ``j`` one 16-byte load. The same bits as the stored codes.
* Quantized statistics: ``stat_codes`` uint8 ``[NS, O, GPS]`` (the scale's second-level code in
  the low nibble, the zero's in the high one: one load per slab and row) and ``stat_coef`` fp16
  ``[NS, O / beta2, GPS, 4]``, the second-level ``(scale_qq_scale, scale_qq_zero, zero_qq_scale,
  zero_qq_zero)`` of each group, as stored. The kernel turns them into multiply-add coefficients
  ``scale = a_s f(c_s) + b_s`` (``a = qq_scale 2^-19``, ``b = -qq_scale (qq_zero + 16)``, where
  ``f(c) = 2^23 + c 2^19`` is the float a code becomes when OR-ed into the mantissa of ``2^23``).
* fp16 statistics (``qq_*_bits = 16``): ``stat_coef`` fp16 ``(scale, zero)`` pairs ``[NS, O, GPS, 2]``.
* ``perm`` and ``outlier_row_offsets`` as stored; ``outlier_values`` fp16 as stored (each REPLACES
  the dense value: the GEMV adds ``(value - dense) x[perm[k]]``, computing the dense value at the
  outlier from the codes and statistics); ``outlier_perm_cols``: each outlier's column in the
  **permuted** order (int16 when ``in_features < 32768``), in the stored order of the outliers.

Slabs are ``CK = 4 F`` columns (128 for 3-bit codes, 32 for 4-bit, 64 for 2-bit); a group of
``beta1`` columns must divide a slab or be a multiple of it. ``GPS = max(1, CK / beta1)`` groups
per slab; statistics are kept once per group, ``NS = ceil(G / GPS)`` *stat slabs*, slab ``b``
reading stat slab ``b // SPG`` (``SPG = max(1, beta1 / CK)`` slabs per group). A last partial slab
is padded with zero codes and zero statistics. Size against the stored format: the same codes
(up to the padding of a partial last slab), statistic codes in 8 bits per group and row instead of
``qq_scale_bits + qq_zero_bits`` (6 for the presets: +2 bits per ``beta1`` weights), the rest
equal; ``xmul``, the per-column powers of two of the kernel, depends only on ``wbits`` and is
shared by all layers (:func:`xmul`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from papercore.kernels.packing import pack_bits, unpack_bits
from spqr.config import FP16_STATS

FIELDS = {2: 16, 3: 32, 4: 8}  # codes per thread word-set (F)
PLANES = {2: 1, 3: 3, 4: 1}  # 32-bit words per thread word-set (P)
SLOTS = {2: 4, 3: 3, 4: 2}  # codes that share one shifted copy of a word ("view") in the kernel
PMIN = {2: 15, 3: 14, 4: 15}  # the mantissa bit of a view's first code


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


STORED_ONLY = ("codes", "scale_codes", "scale_qq_scale", "scale_qq_zero", "zero_codes", "zero_qq_scale",
               "zero_qq_zero", "scale", "zero", "outlier_col_indices")  # fmt: skip
KERNEL_ONLY = ("planes", "stat_codes", "stat_coef", "outlier_perm_cols")


@dataclass(frozen=True)
class Geometry:
    """Sizes of a layer's kernel layout (see the module doc)."""

    wbits: int
    slab: int  # CK
    num_slabs: int  # NB
    groups_per_slab: int  # GPS
    slabs_per_stat: int  # SPG
    stat_slabs: int  # NS
    groups: int  # G

    @property
    def codes_per_group_step(self) -> int:
        """JPG: codes of a thread per group of a slab."""
        return self.slab // (4 * self.groups_per_slab)


def geometry(layer) -> Geometry:
    if not fast_supported(layer):
        raise ValueError("this layer's configuration has no fast kernel layout (see fast_supported)")
    wbits, n, beta1 = layer.wbits, layer.in_features, layer.groupsize
    ck = 4 * FIELDS[wbits]
    gps = max(1, ck // beta1)
    groups = n // beta1
    return Geometry(wbits, ck, -(-n // ck), gps, max(1, beta1 // ck), -(-groups // gps), groups)


@functools.cache
def xmul(wbits: int, device: torch.device) -> torch.Tensor:
    """float32 ``[CK]``: the power of two ``2^-PP`` that undoes the bit position ``PP`` of each slab
    column's code inside the mantissa (see :mod:`spqr.kernels._fast`); one per ``wbits`` and device."""
    pmin, ck = PMIN[wbits], 4 * FIELDS[wbits]
    return torch.tensor(
        [2.0 ** -(pmin + wbits * code_slot(q // 4, wbits)) for q in range(ck)],
        dtype=torch.float32,
        device=device,
    )


def _by_stat_slab(t: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """``[R, G, ...]`` per-group values -> ``[NS, R, GPS, ...]`` (groups past G: zeros)."""
    pad = geo.stat_slabs * geo.groups_per_slab - geo.groups
    if pad:
        t = torch.cat([t, t.new_zeros(t.shape[0], pad, *t.shape[2:])], 1)
    t = t.view(t.shape[0], geo.stat_slabs, geo.groups_per_slab, *t.shape[2:])
    return t.transpose(0, 1).contiguous()


def _from_stat_slab(t: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Inverse of :func:`_by_stat_slab`: ``[NS, R, GPS, ...]`` -> ``[R, G, ...]``."""
    t = t.transpose(0, 1)
    return t.reshape(t.shape[0], geo.stat_slabs * geo.groups_per_slab, *t.shape[3:])[:, : geo.groups]


def _inverse(perm: torch.Tensor) -> torch.Tensor:
    inv = torch.empty(perm.numel(), dtype=torch.int64, device=perm.device)
    inv[perm.long()] = torch.arange(perm.numel(), device=perm.device)
    return inv


@torch.no_grad()
def to_kernel(layer) -> dict[str, torch.Tensor]:
    """The kernel-layout buffers of a layer that holds the stored buffers (see the module doc)."""
    geo = geometry(layer)
    wbits, o, n, f = layer.wbits, layer.out_features, layer.in_features, FIELDS[layer.wbits]
    codes = unpack_bits(layer.codes, wbits, n).to(torch.int64)  # [O, I], permuted order
    padded = torch.nn.functional.pad(codes, (0, geo.num_slabs * geo.slab - n))
    per_thread = padded.view(o, geo.num_slabs, f, 4).permute(1, 0, 3, 2)  # [NB, O, t, j]
    out = {"planes": _pack_streams(per_thread, wbits).permute(0, 3, 1, 2).contiguous()}  # [NB, P, O, 4]
    if layer.qq_scale_bits >= FP16_STATS:
        out["stat_coef"] = _by_stat_slab(torch.stack([layer.scale, layer.zero], -1), geo)
    else:
        g = geo.groups
        sc = unpack_bits(layer.scale_codes, layer.qq_scale_bits, o * g).view(o, g)
        zc = unpack_bits(layer.zero_codes, layer.qq_zero_bits, o * g).view(o, g)
        out["stat_codes"] = _by_stat_slab((sc | (zc << 4)).to(torch.uint8), geo)
        coef = [layer.scale_qq_scale, layer.scale_qq_zero, layer.zero_qq_scale, layer.zero_qq_zero]
        out["stat_coef"] = _by_stat_slab(torch.stack(coef, -1), geo)
    out["outlier_perm_cols"] = _inverse(layer.perm)[layer.outlier_col_indices.long()].to(
        layer.outlier_col_indices.dtype
    )
    return out


def kernel_codes(layer) -> torch.Tensor:
    """int64 ``[O, I]`` codes in the permuted column order, read from ``planes``."""
    geo = geometry(layer)
    w, f = layer.wbits, FIELDS[layer.wbits]
    words = layer.planes.long() & 0xFFFFFFFF  # [NB, P, O, 4]
    j = torch.arange(f, device=words.device)
    p, sh = (w * j) // 32, (w * j) % 32
    lo = words[:, p]  # [NB, F, O, 4]
    hi = words[:, (p + 1).clamp(max=words.shape[1] - 1)]
    both = lo | torch.where((sh + w > 32)[None, :, None, None], hi << 32, 0)
    codes = (both >> sh[None, :, None, None]) & ((1 << w) - 1)  # [NB, j, O, t]
    codes = codes.permute(2, 0, 1, 3).reshape(layer.out_features, geo.num_slabs * geo.slab)
    return codes[:, : layer.in_features]


def kernel_statistic(layer, stat: str) -> torch.Tensor:
    """First-level ``scale`` or ``zero`` as float32 ``[O, G]``, from the kernel layout, computed as the
    stored format's :meth:`~spqr.QuantizedLinear.statistic` does."""
    geo = geometry(layer)
    i = 0 if stat == "scale" else 1
    coef = _from_stat_slab(layer.stat_coef, geo).float()
    if layer.qq_scale_bits >= FP16_STATS:
        return coef[..., i].contiguous()
    code = (_from_stat_slab(layer.stat_codes, geo).long() >> (4 * i)) & 15
    q = code.float().view(-1, layer.qq_groupsize, geo.groups)  # [O / beta2, beta2, G]
    s, z = coef[:, None, :, 2 * i], coef[:, None, :, 2 * i + 1]
    return (s * (q - z)).reshape(layer.out_features, geo.groups)


@torch.no_grad()
def to_stored(layer) -> dict[str, torch.Tensor]:
    """The stored-format buffers (but ``perm``, the row offsets and the values, which both layouts
    share) of a layer that holds the kernel layout: exactly the tensors :func:`to_kernel` read."""
    geo = geometry(layer)
    o, g = layer.out_features, geo.groups
    out = {"codes": pack_bits(kernel_codes(layer).to(torch.int32), layer.wbits)}
    coef = _from_stat_slab(layer.stat_coef, geo)
    if layer.qq_scale_bits >= FP16_STATS:
        out["scale"], out["zero"] = coef[..., 0].contiguous(), coef[..., 1].contiguous()
    else:
        codes = _from_stat_slab(layer.stat_codes, geo).to(torch.int32)
        out["scale_codes"] = pack_bits((codes & 15).reshape(o * g), layer.qq_scale_bits)
        out["zero_codes"] = pack_bits((codes >> 4).reshape(o * g), layer.qq_zero_bits)
        for i, name in enumerate(("scale_qq_scale", "scale_qq_zero", "zero_qq_scale", "zero_qq_zero")):
            out[name] = coef[..., i].contiguous()
    out["outlier_col_indices"] = layer.perm[layer.outlier_perm_cols.long()]
    return out
