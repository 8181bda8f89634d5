r"""Fused Triton quantize: rows -> group norms -> Hadamard -> nearest grid point -> packed codes.

One program takes ``BM`` rows and one Hadamard group of ``G`` channels. The first pass computes the
group's L2 norm :math:`s`, rounded to the scale dtype as stored. The second pass walks the output
channels ``BN`` at a time: :math:`y = (x H_G)_{\text{tile}} / s`, with the :math:`\pm 1` tiles
generated in registers (:math:`(-1)^{\mathrm{popcount}(i \,\&\, j)}`), then the nearest of the
``n`` grid points for each ``d``-dimensional piece, by
:math:`\arg\max_j 2\langle y, g_j\rangle - \|g_j\|^2` as in :func:`aquakv.grids.nearest`, then
the codes packed into 32-bit words in :mod:`papercore.kernels.packing`'s layout. Only the packed
codes and the scales are written. The torch reference is :meth:`aquakv.quantizer.HiggsQuantizer.quantize`.
The two can differ on points that lie on a decision boundary to within float32 rounding (the
Hadamard sums run in another order), a few codes in a million.
"""

from __future__ import annotations

import functools

import torch

from papercore.kernels.triton_guard import interpreter_enabled, require_triton


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def quantize_kernel(
        x_ptr, grid_ptr, gnorm_ptr, codes_ptr, scales_ptr,
        M, C, NW, NS,
        G: tl.constexpr, D: tl.constexpr, NPTS: tl.constexpr, BITS: tl.constexpr, SCALE_FP16: tl.constexpr,
        SCALE_BF16: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    ):  # fmt: skip
        pid_m, gi = tl.program_id(0), tl.program_id(1)
        rm = pid_m * BM + tl.arange(0, BM)
        mmask = rm < M
        rows = rm.to(tl.int64)[:, None] * C + gi * G
        sq = tl.zeros((BM,), dtype=tl.float32)
        for k0 in range(0, G, BK):
            x = tl.load(x_ptr + rows + k0 + tl.arange(0, BK)[None, :], mask=mmask[:, None], other=0.0)
            sq += tl.sum(x * x, axis=1)
        s = tl.sqrt(sq)
        if SCALE_FP16:
            s = s.to(tl.float16).to(tl.float32)
        if SCALE_BF16:
            s = s.to(tl.bfloat16).to(tl.float32)
        tl.store(scales_ptr + rm.to(tl.int64) * NS + gi, s.to(scales_ptr.dtype.element_ty), mask=mmask)
        inv = 1.0 / tl.where(s > 0, s, 1.0)
        P: tl.constexpr = BN // D  # grid pieces per tile
        CPW: tl.constexpr = 32 // BITS  # codes per word
        for n0 in range(0, G, BN):
            col = (n0 + tl.arange(0, BN)).to(tl.int32)
            y = tl.zeros((BM, BN), dtype=tl.float32)
            for k0 in range(0, G, BK):
                x = tl.load(x_ptr + rows + k0 + tl.arange(0, BK)[None, :], mask=mmask[:, None], other=0.0)
                p = (k0 + tl.arange(0, BK)).to(tl.int32)[:, None] & col[None, :]
                p = p ^ (p >> 16)
                p = p ^ (p >> 8)
                p = p ^ (p >> 4)
                p = p ^ (p >> 2)
                p = p ^ (p >> 1)
                h = (1 - 2 * (p & 1)).to(tl.float32)
                y += tl.dot(x, h, input_precision="ieee")
            y = tl.reshape(y * inv[:, None], (BM, P, D))
            best = tl.full((BM, P), float("-inf"), dtype=tl.float32)
            code = tl.zeros((BM, P), dtype=tl.int32)
            dd = tl.arange(0, D)
            for j in range(NPTS):
                g = tl.load(grid_ptr + j * D + dd)
                score = 2.0 * tl.sum(y * g[None, None, :], axis=2) - tl.load(gnorm_ptr + j)
                better = score > best
                best = tl.where(better, score, best)
                code = tl.where(better, j, code)
            W: tl.constexpr = P // CPW
            shifts = (tl.arange(0, CPW) * BITS).to(tl.uint32)
            c3 = tl.reshape(code.to(tl.uint32), (BM, W, CPW))
            words = tl.sum(c3 << shifts[None, None, :], axis=2)
            w0 = (gi * G + n0) // D // CPW
            tl.store(codes_ptr + rm.to(tl.int64)[:, None] * NW + w0 + tl.arange(0, W)[None, :],
                     words.to(tl.int32, bitcast=True), mask=mmask[:, None])  # fmt: skip

    return quantize_kernel


def quantize_supported(quantizer) -> bool:
    """Code widths dividing 32 (one packed stream) and groups of at least 32 channels (tile sizes)."""
    from aquakv.quantizer import HiggsQuantizer

    return (
        isinstance(quantizer, HiggsQuantizer)
        and quantizer.bits in (1, 2, 4, 8, 16)
        and quantizer.group >= 32
        and quantizer.d in (1, 2, 4, 8)
        and quantizer.n <= 256
        and quantizer.group % quantizer.d == 0
    )


def quantize_triton(quantizer, x: torch.Tensor):
    """:meth:`HiggsQuantizer.quantize` of rows ``x [..., C]`` in one launch; returns :class:`QRows`."""
    from aquakv.quantizer import QRows

    require_triton(x.device)
    if not quantize_supported(quantizer):
        raise ValueError("this quantizer has no fused quantize kernel (see quantize_supported)")
    C, G, D = quantizer.channels, quantizer.group, quantizer.d
    if x.shape[-1] != C:
        raise ValueError(f"rows must have {C} channels, got {x.shape[-1]}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, C).float().contiguous()
    M = x2.shape[0]
    codes = torch.empty(M, quantizer.words, dtype=torch.int32, device=x.device)
    scales = torch.empty(M, C // G, dtype=quantizer.scale_dtype, device=x.device)
    if M:
        grid = quantizer._grid(x.device).float().contiguous()
        gnorm = (grid * grid).sum(1).contiguous()
        cpw = 32 // quantizer.bits
        bn = max(32, D * cpw)
        bm, bk = (16, 32) if interpreter_enabled() else (32, 64)
        _kernel()[(-(-M // bm), C // G)](
            x2, grid, gnorm, codes, scales, M, C, quantizer.words, C // G,
            G=G, D=D, NPTS=quantizer.n, BITS=quantizer.bits,
            SCALE_FP16=quantizer.scale_dtype == torch.float16, SCALE_BF16=quantizer.scale_dtype == torch.bfloat16,
            BM=bm, BN=min(bn, G), BK=min(bk, G), num_warps=4,
        )  # fmt: skip
    return QRows(codes.view(*lead, -1), scales.view(*lead, -1))
