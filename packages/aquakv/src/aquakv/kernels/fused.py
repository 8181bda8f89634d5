r"""Triton decode: packed codes -> grid lookup -> scale -> inverse Hadamard -> + predictor.

Two launches. The first takes ``BM`` rows and one whole Hadamard group: it unpacks the codes
into the scaled grid values :math:`Y = \frac{s}{G} \odot \mathrm{grid}[\mathrm{codes}]` and
applies the Hadamard transform in its Kronecker form, :math:`H_G = H_{G_A} \otimes H_{G_B}`
(Sylvester matrices factor so): viewing a row as a :math:`G_A \times G_B` matrix,
:math:`Y H_G = H_{G_A}^\top Y H_{G_B}`, two small tensor-core products of
:math:`G (G_A + G_B)` multiply-adds per row instead of :math:`G^2` (64 Ki instead of 1 Mi at
:math:`G = 1024`). It writes the residual :math:`R = Y H_G` (one ``[rows, C]`` transient of the
layer). The second computes one output tile ``[BM rows, BN channels]`` as

.. math:: \mathrm{out} = \underbrace{X W^\top + b}_{\text{predictor}} + R_{\text{tile}},

one matrix product accumulated in float32, on fp16/bf16 tensor cores for half-precision models
(the residual is rounded to fp16 between the two Kronecker factors: < 1e-3 relative, far under
the quantization error). History: the first kernel decoded the codes inside the product (every
channel tile re-decoded the whole group, 30 TFLOP/s); the second multiplied by the dense
:math:`H_G` in the product (2.4 TFLOP per decode step at 8k tokens on a 3B model, 40% of them
the Hadamard). Codes are 32-bit words of ``papercore.kernels.packing`` (code widths dividing 32).
The predictor input may come in two parts ``[X_1, X_2]`` (keys and the previous layer's values
for the value predictor), so the cache never concatenates them.

The epilogue writes the reconstructed rows and, optionally, a second copy straight into the
attention tensor (``into``, a strided ``[B, T, C]`` slice of the layer's full K or V), with RoPE
applied on the way for keys: each tile covers whole heads, so a channel's rotary partner was
written by the same program and is read back after a barrier. That removes the separate
rotate, cast and concatenate passes of the torch path. The torch reference is
:func:`aquakv.kernels.decode_predict_torch`.
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
        configs = [triton.Config({"BM": 16, "BK": 16}, num_warps=1)]
    else:
        configs = [
            triton.Config({"BM": 64, "BK": 64}, num_warps=4, num_stages=3),
            triton.Config({"BM": 128, "BK": 64}, num_warps=8, num_stages=3),
            triton.Config({"BM": 128, "BK": 32}, num_warps=4, num_stages=4),
            triton.Config({"BM": 64, "BK": 32}, num_warps=4, num_stages=4),
        ]

    @triton.jit
    def unpack_kernel(codes_ptr, scales_ptr, grid_ptr, hA_ptr, hB_ptr, r_ptr, M, N, NW, NS,
                      BITS: tl.constexpr, D: tl.constexpr, G: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
                      BM: tl.constexpr, FP32: tl.constexpr):  # fmt: skip
        # R = s/G * grid[codes] @ H_G for BM rows and one whole Hadamard group: each 32-bit word
        # is loaded once and split into its 32 / BITS codes, each code gathers its D grid values;
        # then H_G = H_HA (x) H_HB is applied as two small products (one per Kronecker factor).
        CPW: tl.constexpr = 32 // BITS
        NCODE: tl.constexpr = G // D
        rm = tl.program_id(0) * BM + tl.arange(0, BM)
        mmask = rm < M
        rm64 = rm.to(tl.int64)
        c0 = tl.program_id(1) * G
        wi = (c0 // D) // CPW + tl.arange(0, NCODE // CPW)
        word = tl.load(codes_ptr + rm64[:, None] * NW + wi[None, :], mask=mmask[:, None], other=0)
        shift = (tl.arange(0, CPW) * BITS).to(tl.uint32)
        code = (word.to(tl.uint32, bitcast=True)[:, :, None] >> shift[None, None, :]) & ((1 << BITS) - 1)
        code = tl.reshape(code, (BM, NCODE))
        y = tl.load(grid_ptr + code.to(tl.int32)[:, :, None] * D + tl.arange(0, D)[None, None, :])
        s = tl.load(scales_ptr + rm64 * NS + c0 // G, mask=mmask, other=0.0).to(tl.float32)
        y = tl.reshape(y, (BM, G)) * (s / G)[:, None]
        hB = tl.load(hB_ptr + tl.arange(0, HB)[:, None] * HB + tl.arange(0, HB)[None, :])
        if FP32:
            z = tl.dot(tl.reshape(y, (BM * HA, HB)), hB.to(tl.float32), input_precision="ieee")
        else:
            z = tl.dot(tl.reshape(y.to(hB.dtype), (BM * HA, HB)), hB)
        if HA > 1:  # the other factor acts on the middle index: transpose it last, multiply, transpose back
            hA = tl.load(hA_ptr + tl.arange(0, HA)[:, None] * HA + tl.arange(0, HA)[None, :])
            zt = tl.reshape(tl.permute(tl.reshape(z, (BM, HA, HB)), (0, 2, 1)), (BM * HB, HA))
            if FP32:
                z = tl.dot(zt, hA.to(tl.float32), input_precision="ieee")
            else:
                z = tl.dot(zt.to(hA.dtype), hA)
            z = tl.permute(tl.reshape(z, (BM, HB, HA)), (0, 2, 1))
        rc = c0 + tl.arange(0, G)
        tl.store(
            r_ptr + rm64[:, None] * N + rc[None, :],
            tl.reshape(z, (BM, G)).to(r_ptr.dtype.element_ty),
            mask=mmask[:, None],
        )

    @triton.autotune(configs=autotune_configs(configs), key=["N", "K1", "K2", "HAS_PRED", "INTO", "ROPE"])
    @triton.jit
    def decode_kernel(
        r_ptr, x_ptr, x2_ptr, w_ptr, b_ptr, out_ptr, into_ptr, cos_ptr, sin_ptr,
        M, N, K1, K2, TQ, into_sb, into_st,
        HD: tl.constexpr,
        HAS_PRED: tl.constexpr, HAS_X2: tl.constexpr, INTO: tl.constexpr, ROPE: tl.constexpr,
        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    ):  # fmt: skip
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        mmask = rm < M
        rm64 = rm.to(tl.int64)
        # the dequantized residual (already through the Hadamard transform) starts the accumulator
        acc = tl.load(r_ptr + rm64[:, None] * N + rn[None, :], mask=mmask[:, None], other=0.0).to(tl.float32)
        if HAS_PRED:
            KW = K1 + K2
            for k0 in range(0, K1, BK):
                rk = k0 + tl.arange(0, BK)
                kmask = rk < K1
                x = tl.load(
                    x_ptr + rm64[:, None] * K1 + rk[None, :], mask=mmask[:, None] & kmask[None, :], other=0.0
                )
                w = tl.load(
                    w_ptr + rn[None, :].to(tl.int64) * KW + rk[:, None], mask=kmask[:, None], other=0.0
                )
                acc += tl.dot(x, w)
            if HAS_X2:
                for k0 in range(0, K2, BK):
                    rk = k0 + tl.arange(0, BK)
                    kmask = rk < K2
                    x = tl.load(
                        x2_ptr + rm64[:, None] * K2 + rk[None, :],
                        mask=mmask[:, None] & kmask[None, :],
                        other=0.0,
                    )
                    w = tl.load(
                        w_ptr + rn[None, :].to(tl.int64) * KW + K1 + rk[:, None],
                        mask=kmask[:, None],
                        other=0.0,
                    )
                    acc += tl.dot(x, w)
            acc += tl.load(b_ptr + rn).to(tl.float32)[None, :]
        optr = out_ptr + rm64[:, None] * N + rn[None, :]
        tl.store(optr, acc.to(out_ptr.dtype.element_ty), mask=mmask[:, None])
        if INTO:
            t = rm % TQ
            dst = into_ptr + (rm // TQ).to(tl.int64)[:, None] * into_sb + t.to(tl.int64)[:, None] * into_st
            if ROPE:
                # rotate_half pairs channel d of a head with d +- HD/2: same tile, read back after a barrier
                tl.debug_barrier()
                d = rn % HD
                partner = rn - d + (d + HD // 2) % HD
                own = tl.load(optr, mask=mmask[:, None], other=0.0).to(tl.float32)
                other = tl.load(
                    out_ptr + rm64[:, None] * N + partner[None, :], mask=mmask[:, None], other=0.0
                )
                sign = tl.where(d < HD // 2, -1.0, 1.0)
                c = tl.load(cos_ptr + t[:, None] * HD + d[None, :], mask=mmask[:, None], other=0.0)
                sn = tl.load(sin_ptr + t[:, None] * HD + d[None, :], mask=mmask[:, None], other=0.0)
                acc = own * c + other.to(tl.float32) * sign[None, :] * sn
            tl.store(dst + rn[None, :], acc.to(into_ptr.dtype.element_ty), mask=mmask[:, None])

    return unpack_kernel, decode_kernel


@functools.cache
def _hadamard(G: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    from aquakv.kernels.hadamard import hadamard_matrix

    return hadamard_matrix(G, dtype=dtype, device=device).contiguous()


def kronecker_factors(G: int) -> tuple[int, int]:
    """``(HA, HB)`` with ``H_G = H_HA (x) H_HB`` (Sylvester matrices factor so), both >= 16 for the
    tensor cores: ``G * (HA + HB)`` multiply-adds per row instead of ``G**2``. Groups under 256
    channels use one factor, ``(1, G)``."""
    if G < 256:
        return 1, G
    hb = 32 if G >= 512 else 16
    return G // hb, hb


def tile_n() -> int:
    """Output channels per program (the Hadamard group and, with RoPE, the head size must be multiples)."""
    return 16 if interpreter_enabled() else 128


def decode_predict_triton(rows, quantizer, x=None, weight=None, bias=None, *, x2=None, rope=None, into=None,
                          out_dtype=torch.float32):  # fmt: skip
    """Fused decode of ``rows`` (packed codes ``[..., W]`` and scales ``[..., C/G]``) plus
    ``[x, x2] @ weight.T + bias``; see :func:`aquakv.kernels.decode_predict` for ``rope`` and ``into``."""
    import triton

    if rope is not None and into is not None and rope[0].dim() == 3:
        # Per-row positions (left-padded batches): the epilogue indexes RoPE by slot only, so
        # decode here and rotate on the way into `into` in torch.
        from aquakv.kernels import _write_into

        out = decode_predict_triton(rows, quantizer, x, weight, bias, x2=x2, out_dtype=out_dtype)
        _write_into(out, into, rope)
        return out
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
    BN = tile_n()
    if G % BN:
        raise ValueError(f"the fused kernel needs a Hadamard group (G={G}) divisible by {BN}")
    half = codes.device.type == "cuda" and out_dtype in (torch.float16, torch.bfloat16)
    hdt = torch.float16 if half else torch.float32  # the dtype of H and of the residual
    grid_t = quantizer._grid(codes.device).contiguous()
    has_pred = weight is not None
    K2 = 0
    x2_ = out  # unused unless HAS_X2
    if has_pred:
        cdt = weight.dtype
        x_ = x.reshape(M, -1).to(cdt).contiguous()
        if x2 is not None:
            x2_ = x2.reshape(M, -1).to(cdt).contiguous()
            K2 = x2_.shape[1]
        w_, b_ = weight.contiguous(), bias.to(torch.float32).contiguous()
        K1 = x_.shape[1]
        if w_.shape != (C, K1 + K2):
            raise ValueError(f"predictor weight must be [{C}, {K1 + K2}], got {tuple(w_.shape)}")
    else:
        x_ = w_ = b_ = out  # unused
        K1 = 0
    TQ, sb, st = 1, 0, 0
    into_, cos, sin, HD = out, out, out, 2
    if into is not None:
        if (
            into.dim() != 3
            or into.shape[-1] != C
            or into.stride(-1) != 1
            or into.shape[0] * into.shape[1] != M
        ):
            raise ValueError(f"`into` must be a [B, T, {C}] view with contiguous channels and B*T = {M} rows")
        into_, TQ, sb, st = into, into.shape[1], into.stride(0), into.stride(1)
        if rope is not None:
            cos, sin = (t.to(device=codes.device, dtype=torch.float32).contiguous() for t in rope)
            HD = cos.shape[-1]
            if BN % HD or HD % 2 or cos.shape[0] != TQ:
                raise ValueError(
                    f"RoPE in the fused kernel needs an even head size dividing {BN} and {TQ} cos rows"
                )

    unpack, decode = _kernel()
    ha, hb = kronecker_factors(G)
    h_b = _hadamard(hb, hdt, codes.device)
    h_a = _hadamard(ha, hdt, codes.device) if ha > 1 else h_b  # unused when ha == 1
    # the dequantized residual, one layer's transient
    r = torch.empty(M, C, dtype=hdt, device=codes.device)
    bm = 16
    unpack[(triton.cdiv(M, bm), C // G)](
        codes2, scales, grid_t, h_a, h_b, r, M, C, codes2.shape[1], scales.shape[1],
        BITS=quantizer.bits, D=quantizer.d, G=G, HA=ha, HB=hb, BM=bm, FP32=not half,
        num_warps=1 if interpreter_enabled() else (8 if G >= 512 else 4),
    )  # fmt: skip
    decode[lambda meta: (triton.cdiv(M, meta["BM"]), triton.cdiv(C, BN))](
        r, x_, x2_, w_, b_, out, into_, cos, sin, M, C, K1, K2, TQ, sb, st,
        HD=HD, HAS_PRED=has_pred, HAS_X2=K2 > 0,
        INTO=into is not None, ROPE=into is not None and rope is not None, BN=BN,
    )  # fmt: skip
    return out.view(*lead, C)
