"""Reference (pure torch) dequantization and matmul: the definition every kernel is tested against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unsigned_codes(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """Stored codes (unsigned values >= 2^(B-1) stored minus 2^B) -> int64 in [0, 2^B)."""
    return codes.to(torch.int64) & ((1 << nbits) - 1)


def signed_codes(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """int codes in [0, 2^B) -> the stored signed form (int8 for B <= 8, else int16)."""
    dtype = storage_dtype(nbits)
    c = codes.to(torch.int64)
    if c.numel() and (c.min() < 0 or c.max() >= 1 << nbits):
        raise ValueError(f"codes must lie in [0, 2^{nbits})")
    # The upstream convention for every B (convert_to_hf's pack_int_data): values >= 2^(B-1) are
    # stored minus 2^B. Readers take the codes modulo 2^B, so raw values would decode the same.
    return torch.where(c >= 1 << (nbits - 1), c - (1 << nbits), c).to(dtype)


def storage_dtype(nbits: int) -> torch.dtype:
    if nbits <= 8:
        return torch.int8
    if nbits <= 16:
        return torch.int16
    raise ValueError(f"nbits_per_codebook must be <= 16, got {nbits}")


def dequantize(codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Dense weight ``[out, in]`` from ``codes [O, I, M]``, ``codebooks [M, 2^B, out_g, in_g]``, ``scales [O, 1, 1, 1]``.

    :math:`W_{[o, i]} = s_o \\sum_m C_m[b_{o,i,m}]` for each ``out_g x in_g`` block. Differentiable in
    ``codebooks`` and ``scales``.
    """
    num_codebooks, size, out_g, in_g = codebooks.shape
    nbits = size.bit_length() - 1
    idx = unsigned_codes(codes, nbits)  # [O, I, M]
    o, i, m = idx.shape
    if m != num_codebooks:
        raise ValueError(f"codes have {m} codebooks per group, codebooks tensor has {num_codebooks}")
    # Gather each codebook's vectors: flat index m * 2^B + code into [M * 2^B, out_g * in_g].
    flat = codebooks.reshape(num_codebooks * size, out_g * in_g)
    offsets = torch.arange(num_codebooks, device=idx.device) * size
    blocks = F.embedding((idx + offsets).reshape(-1, m), flat).sum(dim=1)  # [O*I, out_g*in_g]
    blocks = blocks.view(o, i, out_g, in_g) * scales.view(o, 1, 1, 1)
    return blocks.permute(0, 2, 1, 3).reshape(o * out_g, i * in_g)


def dequantize_slow(codes, codebooks, scales) -> torch.Tensor:
    """Loop-by-loop definition of :func:`dequantize` (tests only)."""
    num_codebooks, size, out_g, in_g = codebooks.shape
    idx = unsigned_codes(codes, size.bit_length() - 1)
    o, i, _ = idx.shape
    w = torch.zeros(o * out_g, i * in_g, dtype=codebooks.dtype, device=codebooks.device)
    for a in range(o):
        for b in range(i):
            block = sum(codebooks[m, idx[a, b, m]] for m in range(num_codebooks))
            w[a * out_g : (a + 1) * out_g, b * in_g : (b + 1) * in_g] = scales[a, 0, 0, 0] * block
    return w


def linear(x, codes, codebooks, scales, bias=None) -> torch.Tensor:
    """``F.linear(x, dequantize(...), bias)``: the reference forward (differentiable), the weight
    computed in the wider of ``x``'s and the codebooks' dtypes."""
    compute = torch.promote_types(codebooks.dtype, x.dtype)
    return F.linear(x, dequantize(codes, codebooks.to(compute), scales.to(compute)).to(x.dtype), bias)
