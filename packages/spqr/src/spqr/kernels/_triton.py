"""Triton JIT kernels of :mod:`spqr.kernels` (imported only when a Triton path runs).

Layout recap (:mod:`spqr.quantized_linear`): row ``o`` of ``codes`` is a little-endian bitstream of
``wbits``-bit codes in permuted column order (code ``k`` at stream bits ``[k*b, (k+1)*b)``, possibly
straddling two 32-bit words); the second-level codes of a statistic are one stream over ``[O, G]``
row-major; outliers are a CSR over original columns whose values REPLACE the dense weight.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _unpack(words_ptr, idx, BITS: tl.constexpr, mask):
    """Code ``idx`` of the bitstream at ``words_ptr`` (a pointer or a block of pointers), int32."""
    bit = idx.to(tl.int64) * BITS
    word = bit >> 5
    sh = (bit & 31).to(tl.uint32)
    lo = tl.load(words_ptr + word, mask=mask, other=0).to(tl.uint32, bitcast=True)
    v = lo >> sh
    if 32 % BITS != 0:
        # The code straddles into the next word when its last bit is past bit 31 of this one.
        straddle = mask & (sh + BITS > 32)
        hi = tl.load(words_ptr + word + 1, mask=straddle, other=0).to(tl.uint32, bitcast=True)
        # shift < 32 always (a shift by 32 is undefined); hi is 0 where it does not straddle.
        v = v | (hi << tl.minimum(32 - sh, 31))
    return (v & ((1 << BITS) - 1)).to(tl.int32)


@triton.jit
def _stat(codes_ptr, qs_ptr, qz_ptr, rows, groups, mask, G, BITS: tl.constexpr, B2: tl.constexpr, CONST):
    """First-level statistic at ``(rows, groups)`` in float32 (broadcast shapes).

    ``BITS == 0``: the constant ``CONST`` (symmetric zero); ``BITS == 16``: fp16 ``[O, G]`` at
    ``codes_ptr``; else ``qs * (code - qz)`` from the second-level codes, as the reference computes it.
    """
    if BITS == 0:
        return (rows * 0 + groups * 0).to(tl.float32) + CONST
    elif BITS == 16:
        return tl.load(codes_ptr + rows * G + groups, mask=mask, other=0).to(tl.float32)
    else:
        q = _unpack(codes_ptr, rows * G + groups, BITS, mask).to(tl.float32)
        qi = (rows // B2) * G + groups
        s = tl.load(qs_ptr + qi, mask=mask, other=0).to(tl.float32)
        z = tl.load(qz_ptr + qi, mask=mask, other=0).to(tl.float32)
        return s * (q - z)


@triton.jit
def gemv_kernel(
    x_ptr, perm_ptr, inv_ptr, codes_ptr,
    sc_ptr, sqs_ptr, sqz_ptr, zc_ptr, zqs_ptr, zqz_ptr,
    off_ptr, col_ptr, val_ptr, bias_ptr, y_ptr,
    T, O, I, NW, G, stride_x, stride_y, ZCONST,
    WBITS: tl.constexpr, GS: tl.constexpr, B2: tl.constexpr, SBITS: tl.constexpr, ZBITS: tl.constexpr,
    BLOCK_O: tl.constexpr, GPT: tl.constexpr, TD: tl.constexpr, OCH: tl.constexpr,
    USE_DOT: tl.constexpr, FP32: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_OUTLIERS: tl.constexpr,
):  # fmt: skip
    """``y[t, o] = sum_k W[o, k] x[t, k] + bias[o]`` for a block of ``BLOCK_O`` rows and all ``T <= TD`` tokens.

    Pass 1 walks the permuted columns ``GPT`` groups at a time: unpack codes, statistics from their
    second-level codes, gather ``x[:, perm[k]]``, accumulate in float32. Pass 2 (fused) adds
    ``(v - w_dense) * x[:, c]`` for each outlier ``(o, c, v)`` of the block's rows, ``w_dense``
    being the dense value pass 1 used there (found through the inverse permutation ``inv``).
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    rows64 = rows.to(tl.int64)
    t = tl.arange(0, TD)
    tmask = t < T
    BK: tl.constexpr = GPT * GS
    xdt = x_ptr.dtype.element_ty
    acc = tl.zeros((TD, BLOCK_O), dtype=tl.float32)
    row_words = codes_ptr + rows64 * NW
    for g0 in range(0, G, GPT):
        gi = g0 + tl.arange(0, GPT)
        m2 = rmask[:, None] & (gi < G)[None, :]
        scale = _stat(sc_ptr, sqs_ptr, sqz_ptr, rows64[:, None], gi[None, :], m2, G, SBITS, B2, 0.0)
        zero = _stat(zc_ptr, zqs_ptr, zqz_ptr, rows64[:, None], gi[None, :], m2, G, ZBITS, B2, ZCONST)
        k3 = gi[None, :, None] * GS + tl.arange(0, GS)[None, None, :]
        q = _unpack(row_words[:, None, None], k3, WBITS, m2[:, :, None]).to(tl.float32)
        w = scale[:, :, None] * (q - zero[:, :, None])  # [BLOCK_O, GPT, GS], 0 where masked
        w = tl.reshape(w, (BLOCK_O, BK)).to(xdt)  # rounded like the reference's W.to(x.dtype)
        k = g0 * GS + tl.arange(0, BK)
        kmask = k < I
        p = tl.load(perm_ptr + k, mask=kmask, other=0).to(tl.int64)
        xt = tl.load(
            x_ptr + t[:, None] * stride_x + p[None, :], mask=tmask[:, None] & kmask[None, :], other=0
        )
        if USE_DOT:
            if FP32:
                acc = tl.dot(xt, tl.trans(w), acc, input_precision="ieee")
            else:
                acc = tl.dot(xt, tl.trans(w), acc)
        else:
            acc += tl.sum(xt.to(tl.float32)[:, None, :] * w.to(tl.float32)[None, :, :], axis=2)
    if HAS_OUTLIERS:
        start = tl.load(off_ptr + rows, mask=rmask, other=0)
        cnt = tl.load(off_ptr + rows + 1, mask=rmask, other=0) - start
        n = tl.max(cnt, axis=0)
        for j0 in range(0, n, OCH):
            j = j0 + tl.arange(0, OCH)
            om = rmask[:, None] & (j[None, :] < cnt[:, None])  # [BLOCK_O, OCH]
            idx = start[:, None] + j[None, :]
            c = tl.load(col_ptr + idx, mask=om, other=0).to(tl.int64)
            v = tl.load(val_ptr + idx, mask=om, other=0).to(xdt).to(tl.float32)
            kk = tl.load(inv_ptr + c, mask=om, other=0).to(tl.int64)
            gg = kk // GS
            sc = _stat(sc_ptr, sqs_ptr, sqz_ptr, rows64[:, None], gg, om, G, SBITS, B2, 0.0)
            zr = _stat(zc_ptr, zqs_ptr, zqz_ptr, rows64[:, None], gg, om, G, ZBITS, B2, ZCONST)
            qo = _unpack(row_words[:, None], kk, WBITS, om).to(tl.float32)
            wd = (sc * (qo - zr)).to(xdt).to(tl.float32)
            delta = tl.where(om, v - wd, 0.0)
            xm = tmask[:, None, None] & om[None, :, :]
            xo = tl.load(x_ptr + t[:, None, None] * stride_x + c[None, :, :], mask=xm, other=0).to(tl.float32)
            acc += tl.sum(xo * delta[None, :, :], axis=2)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rows, mask=rmask, other=0).to(tl.float32)[None, :]
    ym = tmask[:, None] & rmask[None, :]
    tl.store(y_ptr + t[:, None] * stride_y + rows[None, :], acc.to(y_ptr.dtype.element_ty), mask=ym)


@triton.jit
def dequant_kernel(
    perm_ptr, codes_ptr, sc_ptr, sqs_ptr, sqz_ptr, zc_ptr, zqs_ptr, zqz_ptr, w_ptr,
    O, I, NW, G, GS, ZCONST,
    WBITS: tl.constexpr, B2: tl.constexpr, SBITS: tl.constexpr, ZBITS: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Dense weight tile in the original column order: ``W[o, perm[k]] = scale * (code - zero)`` (any groupsize)."""
    rows = tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    rows64 = rows.to(tl.int64)[:, None]
    kmask = k < I
    m = (rows < O)[:, None] & kmask[None, :]
    g = (k // GS)[None, :]
    scale = _stat(sc_ptr, sqs_ptr, sqz_ptr, rows64, g, m, G, SBITS, B2, 0.0)
    zero = _stat(zc_ptr, zqs_ptr, zqz_ptr, rows64, g, m, G, ZBITS, B2, ZCONST)
    q = _unpack(codes_ptr + rows64 * NW, k[None, :], WBITS, m).to(tl.float32)
    w = scale * (q - zero)
    p = tl.load(perm_ptr + k, mask=kmask, other=0).to(tl.int64)
    tl.store(w_ptr + rows64 * I + p[None, :], w.to(w_ptr.dtype.element_ty), mask=m)


@triton.jit
def outlier_replace_kernel(off_ptr, col_ptr, val_ptr, w_ptr, O, I, BLOCK_O: tl.constexpr, OCH: tl.constexpr):
    """``W[o, c] = v`` for every outlier (run after :func:`dequant_kernel`)."""
    rows = tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    start = tl.load(off_ptr + rows, mask=rmask, other=0)
    cnt = tl.load(off_ptr + rows + 1, mask=rmask, other=0) - start
    n = tl.max(cnt, axis=0)
    for j0 in range(0, n, OCH):
        j = j0 + tl.arange(0, OCH)
        om = rmask[:, None] & (j[None, :] < cnt[:, None])
        idx = start[:, None] + j[None, :]
        c = tl.load(col_ptr + idx, mask=om, other=0).to(tl.int64)
        v = tl.load(val_ptr + idx, mask=om, other=0)
        tl.store(w_ptr + rows.to(tl.int64)[:, None] * I + c, v.to(w_ptr.dtype.element_ty), mask=om)


@triton.jit
def invert_perm_kernel(perm_ptr, inv_ptr, I, BLOCK: tl.constexpr):
    """``inv[perm[k]] = k``."""
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = k < I
    p = tl.load(perm_ptr + k, mask=m, other=0).to(tl.int64)
    tl.store(inv_ptr + p, k.to(inv_ptr.dtype.element_ty), mask=m)
