r"""Fused Triton decode: packed codes -> grid lookup -> inverse Hadamard -> scale -> + predictor.

One output tile ``[BM rows, BN channels]`` (channels inside one Hadamard group of size G) is

.. math:: \mathrm{out} = \underbrace{X W^\top + b}_{\text{predictor}}
          + \frac{s}{G} \odot \big(\mathrm{grid}[\mathrm{codes}]\; H_G[:, \text{tile}]\big),

two matrix products accumulated in float32 in the same program. The inverse Hadamard is a
product with the ``±1`` matrix :math:`(H_G)_{ij} = (-1)^{\mathrm{popcount}(i \,\&\, j)}`, whose
tiles are generated in registers (never read from memory); codes are unpacked from the 32-bit
words of ``papercore.kernels.packing`` in the kernel (code widths dividing 32). Nothing but the
reconstructed rows is written. The torch reference is :func:`aquakv.kernels.decode_predict_torch`.
"""

from __future__ import annotations

import functools

import torch

from papercore.kernels.triton_guard import autotune_configs, interpreter_enabled, require_triton


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    if interpreter_enabled():
        configs = [triton.Config({"BM": 16, "BN": 16, "BK": 16}, num_warps=1)]
    else:
        configs = [
            triton.Config({"BM": 64, "BN": 128, "BK": 64}, num_warps=4, num_stages=3),
            triton.Config({"BM": 128, "BN": 128, "BK": 64}, num_warps=8, num_stages=3),
            triton.Config({"BM": 64, "BN": 64, "BK": 64}, num_warps=4, num_stages=4),
            triton.Config({"BM": 128, "BN": 64, "BK": 32}, num_warps=4, num_stages=4),
        ]

    @triton.autotune(configs=autotune_configs(configs), key=["N", "K1", "G", "HAS_PRED"])
    @triton.jit
    def decode_kernel(
        codes_ptr, scales_ptr, grid_ptr, x_ptr, w_ptr, b_ptr, out_ptr,
        M, N, K1, NW, NS,
        BITS: tl.constexpr, D: tl.constexpr, G: tl.constexpr, HAS_PRED: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    ):  # fmt: skip
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        mmask = rm < M
        rm64 = rm.to(tl.int64)
        gi = (pid_n * BN) // G  # the Hadamard group of this tile (BN divides G)
        col = (rn % G).to(tl.int32)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for kk in range(0, G, BK):
            k = gi * G + kk + tl.arange(0, BK)
            ci = k // D
            off = ci * BITS
            word = tl.load(
                codes_ptr + rm64[:, None] * NW + (off // 32)[None, :], mask=mmask[:, None], other=0
            )
            word = word.to(tl.uint32, bitcast=True)
            code = (word >> (off % 32).to(tl.uint32)[None, :]) & ((1 << BITS) - 1)
            y = tl.load(grid_ptr + code.to(tl.int32) * D + (k % D)[None, :])
            # H tile: (-1)^popcount(i & j), parity by xor-folding.
            p = (kk + tl.arange(0, BK)).to(tl.int32)[:, None] & col[None, :]
            p = p ^ (p >> 16)
            p = p ^ (p >> 8)
            p = p ^ (p >> 4)
            p = p ^ (p >> 2)
            p = p ^ (p >> 1)
            h = (1 - 2 * (p & 1)).to(tl.float32)
            acc += tl.dot(y.to(tl.float32), h)
        s = tl.load(scales_ptr + rm64 * NS + gi, mask=mmask, other=0.0).to(tl.float32)
        acc = acc * (s / G)[:, None]
        if HAS_PRED:
            pacc = tl.zeros((BM, BN), dtype=tl.float32)
            for k0 in range(0, K1, BK):
                rk = k0 + tl.arange(0, BK)
                kmask = rk < K1
                x = tl.load(
                    x_ptr + rm64[:, None] * K1 + rk[None, :], mask=mmask[:, None] & kmask[None, :], other=0.0
                )
                w = tl.load(
                    w_ptr + rn[None, :].to(tl.int64) * K1 + rk[:, None], mask=kmask[:, None], other=0.0
                )
                pacc += tl.dot(x, w)
            acc += pacc + tl.load(b_ptr + rn).to(tl.float32)[None, :]
        tl.store(
            out_ptr + rm64[:, None] * N + rn[None, :], acc.to(out_ptr.dtype.element_ty), mask=mmask[:, None]
        )

    return decode_kernel


def decode_predict_triton(rows, quantizer, x=None, weight=None, bias=None, *, out_dtype=torch.float32):
    """Fused decode of ``rows`` (packed codes ``[..., W]`` and scales ``[..., C/G]``) plus ``x @ weight.T + bias``."""
    import triton

    codes = rows.codes
    require_triton(codes.device)
    C, G = quantizer.channels, quantizer.group
    lead = codes.shape[:-1]
    codes2 = codes.reshape(-1, codes.shape[-1]).contiguous()
    scales = rows.scales.reshape(-1, rows.scales.shape[-1]).contiguous()
    M = codes2.shape[0]
    out = torch.empty(M, C, dtype=out_dtype, device=codes.device)
    if M == 0:
        return out.view(*lead, C)
    grid_t = quantizer._grid(codes.device).contiguous()
    has_pred = weight is not None
    if has_pred:
        cdt = weight.dtype
        x2 = x.reshape(M, -1).to(cdt).contiguous()
        w2, b2 = weight.contiguous(), bias.to(torch.float32).contiguous()
        K1 = x2.shape[1]
        if w2.shape != (C, K1):
            raise ValueError(f"predictor weight must be [{C}, {K1}], got {tuple(w2.shape)}")
    else:
        x2 = w2 = b2 = out  # unused
        K1 = 0

    def launch(meta):
        if G % meta["BN"] or G % meta["BK"]:
            raise ValueError(f"the fused kernel needs a Hadamard group (G={G}) divisible by its tiles")
        return (triton.cdiv(M, meta["BM"]), triton.cdiv(C, meta["BN"]))

    _kernel()[launch](
        codes2, scales, grid_t, x2, w2, b2, out, M, C, K1, codes2.shape[1], scales.shape[1],
        BITS=quantizer.bits, D=quantizer.d, G=G, HAS_PRED=has_pred,
    )  # fmt: skip
    return out.view(*lead, C)
