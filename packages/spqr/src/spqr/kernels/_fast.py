"""Triton kernel of the fast SpQR matrix-vector path (see :mod:`spqr.kernels.layout` for the layout).

Per program: ``BLOCK_O`` output rows, all ``T <= TD`` tokens, the whole input width in steps of
``BK`` permuted columns. The codes come from the bit-split planes (2 low bits, 16 per word; the
high bits in a second plane), so every word decodes with constant shifts and no code straddles
two words. With one token the scale and zero are applied per group,
``sum_k s (q_k - z) x_k = s (sum_k q_k x_k - z sum_k x_k)``, so each weight costs one
multiply-add; with more tokens the dequantized tile goes through ``tl.dot``. ``xp`` is ``x[:, perm]`` (gathered once
by the launcher, so the weight loop reads it contiguously); ``x`` serves the outlier pass. The outlier pass adds
``delta * x[:, c]`` from the CSR (``delta = value - dense value``, precomputed by the layout).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _codes(lo_ptr, hi_ptr, rows, wj, m, LOW, HIW, HB: tl.constexpr):
    """Codes ``[BLOCK_O, W16, 16]`` (int32) of the 16-code words ``wj`` of ``rows``."""
    i = tl.arange(0, 16)
    lo = tl.load(lo_ptr + rows[:, None] * LOW + wj[None, :], mask=m, other=0)
    q = (lo[:, :, None] >> (2 * i)[None, None, :]) & 3
    if HB == 1:  # 32 one-bit high parts per word: word wj // 2, bits (wj % 2) * 16 + i
        hw = tl.load(hi_ptr + rows[:, None] * HIW + (wj // 2)[None, :], mask=m, other=0)
        sh = ((wj % 2) * 16)[None, :, None] + i[None, None, :]
        q = q | (((hw[:, :, None] >> sh) & 1) << 2)
    elif HB == 2:  # 16 two-bit high parts per word
        hw = tl.load(hi_ptr + rows[:, None] * HIW + wj[None, :], mask=m, other=0)
        q = q | (((hw[:, :, None] >> (2 * i)[None, None, :]) & 3) << 2)
    return q


@triton.jit
def _stats(st_ptr, s16_ptr, z16_ptr, sqs_ptr, sqz_ptr, zqs_ptr, zqz_ptr, rows, g, m, G,
           B2: tl.constexpr, STATS16: tl.constexpr):  # fmt: skip
    """First-level scale and zero ``[BLOCK_O, W16]`` in float32."""
    idx = rows[:, None] * G + g[None, :]
    if STATS16:
        s = tl.load(s16_ptr + idx, mask=m, other=0).to(tl.float32)
        z = tl.load(z16_ptr + idx, mask=m, other=0).to(tl.float32)
    else:
        c = tl.load(st_ptr + idx, mask=m, other=0).to(tl.int32)
        qi = (rows // B2)[:, None] * G + g[None, :]
        s = tl.load(sqs_ptr + qi, mask=m, other=0).to(tl.float32) * (
            (c & 15).to(tl.float32) - tl.load(sqz_ptr + qi, mask=m, other=0).to(tl.float32)
        )
        z = tl.load(zqs_ptr + qi, mask=m, other=0).to(tl.float32) * (
            (c >> 4).to(tl.float32) - tl.load(zqz_ptr + qi, mask=m, other=0).to(tl.float32)
        )
    return s, z


@triton.jit
def fast_gemv_kernel(
    x_ptr, xp_ptr, lo_ptr, hi_ptr, st_ptr, s16_ptr, z16_ptr, sqs_ptr, sqz_ptr, zqs_ptr, zqz_ptr,
    off_ptr, col_ptr, delta_ptr, bias_ptr, y_ptr,
    T, O, I, LOW, HIW, G, stride_x, stride_y,
    HB: tl.constexpr, GS: tl.constexpr, B2: tl.constexpr, STATS16: tl.constexpr,
    BLOCK_O: tl.constexpr, BK: tl.constexpr, TD: tl.constexpr, OCH: tl.constexpr,
    FP32: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_OUTLIERS: tl.constexpr,
):  # fmt: skip
    W16: tl.constexpr = BK // 16
    pid = tl.program_id(0)
    rows = pid * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    rows64 = rows.to(tl.int64)
    j = tl.arange(0, W16)
    i = tl.arange(0, 16)
    xdt = x_ptr.dtype.element_ty
    if TD == 1:
        acc = tl.zeros((BLOCK_O, W16), dtype=tl.float32)
    else:
        t = tl.arange(0, TD)
        tmask = t < T
        acc2 = tl.zeros((TD, BLOCK_O), dtype=tl.float32)
    for k0 in range(0, I, BK):
        wj = k0 // 16 + j
        wmask = wj < LOW
        m = rmask[:, None] & wmask[None, :]
        q = _codes(lo_ptr, hi_ptr, rows64, wj, m, LOW, HIW, HB).to(tl.float32)
        s, z = _stats(st_ptr, s16_ptr, z16_ptr, sqs_ptr, sqz_ptr, zqs_ptr, zqz_ptr, rows64,
                      (wj * 16) // GS, m, G, B2, STATS16)  # fmt: skip
        k = k0 + j[:, None] * 16 + i[None, :]
        kmask = wmask[:, None] & (i[None, :] < 16)
        if TD == 1:
            xv = tl.load(xp_ptr + k, mask=kmask, other=0).to(tl.float32)  # [W16, 16], permuted x
            part = tl.sum(q * xv[None, :, :], axis=2)
            acc += s * (part - z * tl.sum(xv, axis=1)[None, :])
        else:
            w = (s[:, :, None] * (q - z[:, :, None])).to(xdt)
            w = tl.reshape(w, (BLOCK_O, BK))
            kk = k0 + tl.arange(0, BK)
            xt = tl.load(
                xp_ptr + t[:, None] * I + kk[None, :], mask=tmask[:, None] & (kk < I)[None, :], other=0
            )
            if FP32:
                acc2 = tl.dot(xt, tl.trans(w), acc2, input_precision="ieee")
            else:
                acc2 = tl.dot(xt, tl.trans(w), acc2)
    if TD == 1:
        y = tl.sum(acc, axis=1)
    if HAS_OUTLIERS:
        start = tl.load(off_ptr + rows, mask=rmask, other=0)
        cnt = tl.load(off_ptr + rows + 1, mask=rmask, other=0) - start
        n = tl.max(cnt, axis=0)
        for j0 in range(0, n, OCH):
            jj = j0 + tl.arange(0, OCH)
            om = rmask[:, None] & (jj[None, :] < cnt[:, None])
            idx = start[:, None] + jj[None, :]
            c = tl.load(col_ptr + idx, mask=om, other=0).to(tl.int64)
            d = tl.load(delta_ptr + idx, mask=om, other=0).to(tl.float32)
            if TD == 1:
                y += tl.sum(d * tl.load(x_ptr + c, mask=om, other=0).to(tl.float32), axis=1)
            else:
                xm = tmask[:, None, None] & om[None, :, :]
                xo = tl.load(x_ptr + t[:, None, None] * stride_x + c[None, :, :], mask=xm, other=0)
                acc2 += tl.sum(xo.to(tl.float32) * d[None, :, :], axis=2)
    if TD == 1:
        if HAS_BIAS:
            y += tl.load(bias_ptr + rows, mask=rmask, other=0).to(tl.float32)
        tl.store(y_ptr + rows, y.to(y_ptr.dtype.element_ty), mask=rmask)
    else:
        if HAS_BIAS:
            acc2 += tl.load(bias_ptr + rows, mask=rmask, other=0).to(tl.float32)[None, :]
        ym = tmask[:, None] & rmask[None, :]
        tl.store(y_ptr + t[:, None] * stride_y + rows[None, :], acc2.to(y_ptr.dtype.element_ty), mask=ym)


@triton.jit
def fast_dequant_kernel(
    lo_ptr, hi_ptr, st_ptr, s16_ptr, z16_ptr, sqs_ptr, sqz_ptr, zqs_ptr, zqz_ptr, w_ptr,
    O, I, LOW, HIW, G,
    HB: tl.constexpr, GS: tl.constexpr, B2: tl.constexpr, STATS16: tl.constexpr,
    BLOCK_O: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Dense weight in the **permuted** column order, ``W_perm[o, k] = s (q - z)`` (coalesced stores);
    the caller permutes ``x`` instead and writes the outliers at their permuted columns."""
    W16: tl.constexpr = BK // 16
    rows = (tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)).to(tl.int64)
    wj = tl.program_id(1) * W16 + tl.arange(0, W16)
    m = (rows < O)[:, None] & (wj < LOW)[None, :]
    q = _codes(lo_ptr, hi_ptr, rows, wj, m, LOW, HIW, HB).to(tl.float32)
    s, z = _stats(st_ptr, s16_ptr, z16_ptr, sqs_ptr, sqz_ptr, zqs_ptr, zqz_ptr, rows, (wj * 16) // GS, m, G,
                  B2, STATS16)  # fmt: skip
    w = s[:, :, None] * (q - z[:, :, None])
    k = wj[:, None] * 16 + tl.arange(0, 16)[None, :]
    tl.store(
        w_ptr + rows[:, None, None] * I + k[None, :, :], w.to(w_ptr.dtype.element_ty), mask=m[:, :, None]
    )
