r"""Triton kernels of the fast SpQR paths (see :mod:`spqr.kernels.layout` for the layout they read).

**Decoding a code without a conversion.** OR-ing a ``w``-bit code ``q`` into the mantissa of
:math:`2^{23}` at bit ``PP`` gives the float :math:`f = 2^{23} + q\,2^{PP}` exactly: one ``LOP3``
(mask and OR, the magic constant in a register) per weight, no shift when ``PP`` is where the
code already sits. A thread shifts each of its words once per *view* of ``K`` codes (codes at bits
``PMIN, PMIN + w, ...`` of the view, all under bit 23), so most codes cost the mask alone.

**Factoring the statistics out.** With :math:`\tilde x_k = x_k 2^{-PP_k}` (the launcher's
prologue scales ``x[perm]`` once per call) a group of columns sums to

.. math:: \sum_k s (q_k - z) x_k = s \Big(\underbrace{\textstyle\sum_k f_k \tilde x_k}_{a}
          - \underbrace{2^{23} \textstyle\sum_k \tilde x_k}_{\text{big}} - z \textstyle\sum_k x_k\Big),

so the inner loop is one fused multiply-add per weight and token (``a``), while ``big`` and
``sum x`` are per-group constants of the input (computed in the prologue) and the scale and zero
are decoded once per group and row. ``a`` and ``big`` are about :math:`2^{23-PP} |x|` (under
:math:`2^9 |x|`), so float32 keeps about 15 bits of the difference: far under the fp16 weight
precision of the reference.

**Parallelism.** One output row per thread (``BLOCK_O`` rows per program); the slabs of a row are
split over ``n_split`` programs (split-K). Each program first writes its columns of
:math:`\tilde x` and the group sums to a scratch buffer (identical values from every program of
the same split: no ordering needed), then walks its slabs with the next slab's codes loaded one
step ahead. The last program of a row block to finish sums the partials (an arrival counter, one
launch, no zero-filled workspace). An outlier at permuted column ``k`` adds ``(value - dense) *
x[perm[k]]``, the dense value decoded at ``k`` from the codes and statistics as the reference
computes it (so the layer keeps no per-outlier difference beside its values); split ``s`` takes
every ``n_split``-th outlier of a row. Up to four tokens share each decoded code.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.constexpr_function
def _straddles(j, W):
    return (W * j) % 32 + W > 32


@triton.constexpr_function
def _view_shift(j, W, K, PMIN):
    """Right shift of the word that puts code j's view in place (negative: a left shift)."""
    p, s = divmod(W * j, 32)
    s0 = (W - (32 * p) % W) % W  # the first code that starts in word p
    return s0 + W * K * (((s - s0) // W) // K) - PMIN


@triton.jit
def _field(wd0, wd1, wd2, magic, j: tl.constexpr, W: tl.constexpr, K: tl.constexpr, PMIN: tl.constexpr):
    """Code j of a thread's bitstream (bits [W j, W j + W) of wd0|wd1|wd2) as the float32
    2^23 + q 2^PP, PP = PMIN + W * slot (see :func:`spqr.kernels.layout.code_slot`)."""
    P: tl.constexpr = (W * j) // 32
    S: tl.constexpr = (W * j) % 32
    MASK: tl.constexpr = (1 << W) - 1
    if P == 0:
        lo = wd0
        hi = wd1
    elif P == 1:
        lo = wd1
        hi = wd2
    else:
        lo = wd2
        hi = wd2
    if _straddles(j, W):
        f = ((((lo >> S) | (hi << (32 - S))) << PMIN) & (MASK << PMIN)) | magic
    else:
        V: tl.constexpr = _view_shift(j, W, K, PMIN)
        if V >= 0:
            view = lo >> V
        else:
            view = lo << (-V)
        f = (view & (MASK << (S - V))) | magic
    return f.to(tl.float32, bitcast=True)


@triton.jit
def _pick(tile, GPS: tl.constexpr, gi: tl.constexpr):
    """Column gi (a constant) of a [R, GPS] tile held in each thread's registers."""
    R: tl.constexpr = tile.shape[0]
    if GPS == 1:
        return tl.reshape(tile, [R])
    elif GPS == 2:
        a, b = tl.split(tile)
        return a if gi == 0 else b
    elif GPS == 4:
        a, b = tl.split(tl.reshape(tile, [R, 2, 2]))  # tl.split takes the lowest index bit
        c = a if gi % 2 == 0 else b
        a, b = tl.split(c)
        return a if gi // 2 == 0 else b
    else:
        a, b = tl.split(tl.reshape(tile, [R, 2, 2, 2]))
        c = a if gi % 2 == 0 else b
        a, b = tl.split(c)
        c = a if (gi // 2) % 2 == 0 else b
        a, b = tl.split(c)
        return a if gi // 4 == 0 else b


@triton.jit
def _load_slab(codes_ptr, st_ptr, b, rows_c, t, O, P: tl.constexpr, GPS: tl.constexpr, SPG: tl.constexpr,
               STATS16: tl.constexpr):  # fmt: skip
    """The code words (three planes, unused ones repeat plane 0) of slab b and the statistic codes of
    its stat slab b // SPG."""
    cw = codes_ptr + ((b * P * O + rows_c) * 4)[:, None] + t[None, :]
    wd0 = tl.load(cw).to(tl.uint32, bitcast=True)
    wd1 = wd0
    wd2 = wd0
    if P > 1:
        wd1 = tl.load(cw + O * 4).to(tl.uint32, bitcast=True)
    if P > 2:
        wd2 = tl.load(cw + 2 * O * 4).to(tl.uint32, bitcast=True)
    if STATS16:
        st = wd0  # unused
    else:
        bs = b // SPG
        st = tl.load(st_ptr + ((bs * O + rows_c) * GPS)[:, None] + tl.arange(0, GPS)[None, :]).to(tl.uint32)
    return wd0, wd1, wd2, st


@triton.jit
def _stats(st, coef_ptr, b, gi, rows_c, t, O, magic, GPS: tl.constexpr, SPG: tl.constexpr, B2: tl.constexpr,
           STATS16: tl.constexpr):  # fmt: skip
    """First-level scale and zero [BLOCK_O] (float32) of group gi of slab b."""
    bs = b // SPG
    if STATS16:
        sz = tl.load(coef_ptr + ((bs * O + rows_c) * GPS + gi)[:, None] * 2 + tl.arange(0, 2)[None, :])
        s, z = tl.split(sz.to(tl.float32))
    else:
        c = _pick(st, GPS, gi)
        qq = tl.load(coef_ptr + (((bs * (O // B2) + rows_c // B2) * GPS + gi) * 4)[:, None] + t[None, :])
        qs, qz = tl.split(tl.reshape(qq.to(tl.float32), [qq.shape[0], 2, 2]))  # (qs_s, qs_z), (qz_s, qz_z)
        qs_s, qs_z = tl.split(qs)
        qz_s, qz_z = tl.split(qz)
        # stat = qs (c - qz) = a f(c) + b with f(c) = 2^23 + c 2^19: a = qs 2^-19, b = -qs (qz + 16)
        fs = (((c << 19) & (15 << 19)) | magic).to(tl.float32, bitcast=True)
        fz = (((c << 15) & (15 << 19)) | magic).to(tl.float32, bitcast=True)
        s = (qs_s * 1.9073486328125e-06) * fs + (-qs_s * (qz_s + 16.0))  # one FMA once a, b are formed
        z = (qs_z * 1.9073486328125e-06) * fz + (-qs_z * (qz_z + 16.0))
    return s, z


@triton.jit
def _dense_at(codes_ptr, st_ptr, coef_ptr, rows_c, k, om, O, W: tl.constexpr, P: tl.constexpr,
              GPS: tl.constexpr, JPG: tl.constexpr, SPG: tl.constexpr, B2: tl.constexpr,
              STATS16: tl.constexpr):  # fmt: skip
    """The dense weight s (q - z) [BLOCK_O] at permuted column k of each row (where om), computed as
    the reference does (the outlier pass subtracts it where an outlier replaces it)."""
    CK: tl.constexpr = 4 * JPG * GPS
    b = k // CK
    r = k % CK
    bit = (r // 4) * W
    word = codes_ptr + ((b * P + bit // 32) * O + rows_c) * 4 + r % 4
    sh = (bit % 32).to(tl.uint32)
    v = tl.load(word, mask=om, other=0).to(tl.uint32, bitcast=True) >> sh
    if 32 % W != 0:
        straddle = om & (sh + W > 32)
        hi = tl.load(word + O * 4, mask=straddle, other=0).to(tl.uint32, bitcast=True)
        v = v | (hi << tl.minimum(32 - sh, 31))  # hi is 0 where the code does not straddle
    q = (v & ((1 << W) - 1)).to(tl.float32)
    gi = r // (4 * JPG)
    bs = b // SPG
    if STATS16:
        sz = tl.load(coef_ptr + ((bs * O + rows_c) * GPS + gi)[:, None] * 2 + tl.arange(0, 2)[None, :],
                     mask=om[:, None], other=0)  # fmt: skip
        s, z = tl.split(sz.to(tl.float32))
    else:
        c = tl.load(st_ptr + (bs * O + rows_c) * GPS + gi, mask=om, other=0).to(tl.int32)
        qq = tl.load(coef_ptr + (((bs * (O // B2) + rows_c // B2) * GPS + gi) * 4)[:, None]
                     + tl.arange(0, 4)[None, :], mask=om[:, None], other=0)  # fmt: skip
        qs, qz = tl.split(tl.reshape(qq.to(tl.float32), [qq.shape[0], 2, 2]))  # (qs_s, qs_z), (qz_s, qz_z)
        qs_s, qs_z = tl.split(qs)
        qz_s, qz_z = tl.split(qz)
        s = qs_s * ((c & 15).to(tl.float32) - qz_s)
        z = qs_z * ((c >> 4).to(tl.float32) - qz_z)
    return s * (q - z)


@triton.jit
def _prologue_token(x_ptr, perm_ptr, xmul_ptr, xs_ptr, gs_ptr, tok, T, q0, q1, I, IP, NGS,
                    CK: tl.constexpr, GS: tl.constexpr, PB: tl.constexpr):  # fmt: skip
    """x~[tok, q] = x[tok, perm[q]] 2^-PP(q) for q in [q0, q1), and per group of GS columns
    (2^23 sum x~, sum x); zeros for a padding token (tok >= T)."""
    for qs in range(q0, q1, PB):
        q = qs + tl.arange(0, PB)
        src = tl.load(perm_ptr + q, mask=q < I, other=0).to(tl.int32)
        xv = tl.load(x_ptr + src, mask=(q < I) & (q * 0 + tok < T), other=0.0).to(tl.float32)
        xt = xv * tl.load(xmul_ptr + (q % CK))
        tl.store(xs_ptr + tok * IP + q, xt, mask=q < q1)
        gsum = tl.join(
            tl.sum(tl.reshape(xt, [PB // GS, GS]), axis=1) * 8388608.0,
            tl.sum(tl.reshape(xv, [PB // GS, GS]), axis=1),
        )
        g = qs // GS + tl.arange(0, PB // GS)
        tl.store(
            gs_ptr + (tok * NGS + g)[:, None] * 2 + tl.arange(0, 2)[None, :],
            gsum,
            mask=(g < q1 // GS)[:, None],
        )


@triton.jit
def _outliers(y0, y1, y2, y3, x_ptr, stride_x, T, perm_ptr, off_ptr, col_ptr, val_ptr, codes_ptr, st_ptr,
              coef_ptr, rows_c, rmask, pid_s, n_split, O, W: tl.constexpr, P: tl.constexpr, GPS: tl.constexpr,
              JPG: tl.constexpr, SPG: tl.constexpr, B2: tl.constexpr, STATS16: tl.constexpr,
              T_PAD: tl.constexpr):  # fmt: skip
    """y[tok] += (value - dense) * x[tok, perm[k]] over this split's share (every n_split-th) of each
    row's outliers (k: the outlier's permuted column; the value replaces the dense weight). The dense
    value is decoded once for all tokens; tokens past T (padding) read nothing."""
    start = tl.load(off_ptr + rows_c)
    end = tl.where(rmask, tl.load(off_ptr + rows_c + 1), start)
    n = tl.max(end - start, axis=0)
    for j0 in range(pid_s, n, n_split):
        idx = start + j0
        om = idx < end
        k = tl.load(col_ptr + idx, mask=om, other=0).to(tl.int32)
        v = tl.load(val_ptr + idx, mask=om, other=0.0).to(tl.float32)
        d = v - _dense_at(codes_ptr, st_ptr, coef_ptr, rows_c, k, om, O, W, P, GPS, JPG, SPG, B2, STATS16)
        d = tl.where(om, d, 0.0)
        xp = x_ptr + tl.load(perm_ptr + k, mask=om, other=0).to(tl.int32)
        y0 += d * tl.load(xp, mask=om, other=0.0).to(tl.float32)
        tk = k * 0 + T  # the token count, as a block (masks must be blocks)
        if T_PAD > 1:
            y1 += d * tl.load(xp + stride_x, mask=om & (tk > 1), other=0.0).to(tl.float32)
        if T_PAD > 2:
            y2 += d * tl.load(xp + 2 * stride_x, mask=om & (tk > 2), other=0.0).to(tl.float32)
            y3 += d * tl.load(xp + 3 * stride_x, mask=om & (tk > 3), other=0.0).to(tl.float32)
    return y0, y1, y2, y3


@triton.jit
def _finish_token(
    y, tok: tl.constexpr, rows, rows_c, rmask, T, bias_ptr, y_ptr, stride_y, HAS_BIAS: tl.constexpr
):
    if HAS_BIAS:
        y += tl.load(bias_ptr + rows_c).to(tl.float32)
    tl.store(y_ptr + tok * stride_y + rows, y.to(y_ptr.dtype.element_ty), mask=rmask & (rows * 0 + tok < T))


@triton.jit
def gemv_kernel(
    x_ptr, perm_ptr, xmul_ptr, xs_ptr, gs_ptr, codes_ptr, st_ptr, coef_ptr, off_ptr, col_ptr, val_ptr,
    bias_ptr, y_ptr, part_ptr, count_ptr,
    T, O, I, NB, SPS, n_split, stride_x, stride_y, magic,
    W: tl.constexpr, P: tl.constexpr, GPS: tl.constexpr, JPG: tl.constexpr, K: tl.constexpr,
    PMIN: tl.constexpr, B2: tl.constexpr, SPG: tl.constexpr, STATS16: tl.constexpr, T_PAD: tl.constexpr,
    BLOCK_O: tl.constexpr, PB: tl.constexpr, SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_OUTLIERS: tl.constexpr,
):  # fmt: skip
    """``y[t] = x[t] W^T (+ bias)`` for ``T <= T_PAD <= 4`` tokens (see the module doc)."""
    CK: tl.constexpr = 4 * JPG * GPS  # columns per slab
    GS: tl.constexpr = CK // GPS  # columns per group as stored per slab
    IP = NB * CK
    NGS = NB * GPS
    pid_o = tl.program_id(0)
    pid_s = tl.program_id(1)
    b0 = pid_s * SPS
    b1 = tl.minimum(b0 + SPS, NB)
    rows = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    rows_c = tl.minimum(rows, O - 1)
    t = tl.arange(0, 4)
    # the first slab's loads go out before the prologue, so their latency overlaps it
    wd0, wd1, wd2, st = _load_slab(codes_ptr, st_ptr, b0, rows_c, t, O, P, GPS, SPG, STATS16)
    for tok in tl.static_range(T_PAD):
        _prologue_token(x_ptr + tok * stride_x, perm_ptr, xmul_ptr, xs_ptr, gs_ptr, tok, T, b0 * CK, b1 * CK,
                        I, IP, NGS, CK, GS, PB)  # fmt: skip
    tl.debug_barrier()
    y0 = tl.sum(tl.zeros([BLOCK_O, 4], dtype=tl.float32), axis=1)
    y1 = y0
    y2 = y0
    y3 = y0
    for b in range(b0, b1):
        nx0, nx1, nx2, nst = _load_slab(
            codes_ptr, st_ptr, tl.minimum(b + 1, b1 - 1), rows_c, t, O, P, GPS, SPG, STATS16
        )
        xb = xs_ptr + b * CK + t
        for gi in tl.static_range(GPS):
            acc0 = tl.zeros([BLOCK_O, 4], dtype=tl.float32)
            acc1 = acc0
            acc2 = acc0
            acc3 = acc0
            for jj in tl.static_range(JPG):
                f = _field(wd0, wd1, wd2, magic, gi * JPG + jj, W, K, PMIN)
                acc0 += f * tl.load(xb + 4 * (gi * JPG + jj))[None, :]
                if T_PAD > 1:
                    acc1 += f * tl.load(xb + IP + 4 * (gi * JPG + jj))[None, :]
                if T_PAD > 2:
                    acc2 += f * tl.load(xb + 2 * IP + 4 * (gi * JPG + jj))[None, :]
                    acc3 += f * tl.load(xb + 3 * IP + 4 * (gi * JPG + jj))[None, :]
            s, z = _stats(st, coef_ptr, b, gi, rows_c, t, O, magic, GPS, SPG, B2, STATS16)
            big, xsum = tl.split(tl.load(gs_ptr + (b * GPS + gi) * 2 + tl.arange(0, 2)))
            y0 += s * (tl.sum(acc0, axis=1) - (big + z * xsum))
            if T_PAD > 1:
                big, xsum = tl.split(tl.load(gs_ptr + (NGS + b * GPS + gi) * 2 + tl.arange(0, 2)))
                y1 += s * (tl.sum(acc1, axis=1) - (big + z * xsum))
            if T_PAD > 2:
                big, xsum = tl.split(tl.load(gs_ptr + (2 * NGS + b * GPS + gi) * 2 + tl.arange(0, 2)))
                y2 += s * (tl.sum(acc2, axis=1) - (big + z * xsum))
                big, xsum = tl.split(tl.load(gs_ptr + (3 * NGS + b * GPS + gi) * 2 + tl.arange(0, 2)))
                y3 += s * (tl.sum(acc3, axis=1) - (big + z * xsum))
        wd0, wd1, wd2, st = nx0, nx1, nx2, nst
    if HAS_OUTLIERS:
        y0, y1, y2, y3 = _outliers(y0, y1, y2, y3, x_ptr, stride_x, T, perm_ptr, off_ptr, col_ptr, val_ptr,
                                   codes_ptr, st_ptr, coef_ptr, rows_c, rmask, pid_s, n_split, O, W, P, GPS, JPG,
                                   SPG, B2, STATS16, T_PAD)  # fmt: skip
    if SPLIT_K:
        part = part_ptr + pid_s * T_PAD * O + rows
        tl.store(part, y0, mask=rmask)
        if T_PAD > 1:
            tl.store(part + O, y1, mask=rmask)
        if T_PAD > 2:
            tl.store(part + 2 * O, y2, mask=rmask)
            tl.store(part + 3 * O, y3, mask=rmask)
        tl.debug_barrier()  # every thread's partial is written before the counter moves
        arrived = tl.atomic_add(count_ptr + pid_o, 1, sem="acq_rel")
        rmask = rmask & ((rows * 0 + arrived) == n_split - 1)  # only the last program of the row block stores
        if arrived == n_split - 1:
            y0 = tl.zeros_like(y0)
            y1 = y0
            y2 = y0
            y3 = y0
            for sp in range(n_split):
                # .cg: the other programs' partials from L2, never a stale L1 line
                p = part_ptr + sp * T_PAD * O + rows
                y0 += tl.load(p, mask=rmask, other=0.0, cache_modifier=".cg")
                if T_PAD > 1:
                    y1 += tl.load(p + O, mask=rmask, other=0.0, cache_modifier=".cg")
                if T_PAD > 2:
                    y2 += tl.load(p + 2 * O, mask=rmask, other=0.0, cache_modifier=".cg")
                    y3 += tl.load(p + 3 * O, mask=rmask, other=0.0, cache_modifier=".cg")
            tl.atomic_xchg(count_ptr + pid_o, 0)  # re-arm the counter for the next launch
    _finish_token(y0, 0, rows, rows_c, rmask, T, bias_ptr, y_ptr, stride_y, HAS_BIAS)
    if T_PAD > 1:
        _finish_token(y1, 1, rows, rows_c, rmask, T, bias_ptr, y_ptr, stride_y, HAS_BIAS)
    if T_PAD > 2:
        _finish_token(y2, 2, rows, rows_c, rmask, T, bias_ptr, y_ptr, stride_y, HAS_BIAS)
        _finish_token(y3, 3, rows, rows_c, rmask, T, bias_ptr, y_ptr, stride_y, HAS_BIAS)


@triton.jit
def dequant_kernel(
    codes_ptr, st_ptr, coef_ptr, xmul_ptr, w_ptr, O, I, magic,
    W: tl.constexpr, P: tl.constexpr, GPS: tl.constexpr, JPG: tl.constexpr, K: tl.constexpr,
    PMIN: tl.constexpr, B2: tl.constexpr, SPG: tl.constexpr, STATS16: tl.constexpr, BLOCK_O: tl.constexpr,
):  # fmt: skip
    """Dense weight in the **permuted** column order, ``W_perm[o, k] = s (q - z)``, one slab per
    program; the caller permutes ``x`` instead and writes the outliers at their permuted columns."""
    CK: tl.constexpr = 4 * JPG * GPS
    b = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)
    rmask = rows < O
    rows_c = tl.minimum(rows, O - 1)
    t = tl.arange(0, 4)
    wd0, wd1, wd2, st = _load_slab(codes_ptr, st_ptr, b, rows_c, t, O, P, GPS, SPG, STATS16)
    out = w_ptr + rows.to(tl.int64)[:, None] * I + b * CK + t[None, :]
    for gi in tl.static_range(GPS):
        s, z = _stats(st, coef_ptr, b, gi, rows_c, t, O, magic, GPS, SPG, B2, STATS16)
        for jj in tl.static_range(JPG):
            f = _field(wd0, wd1, wd2, magic, gi * JPG + jj, W, K, PMIN)
            q = (f - 8388608.0) * tl.load(xmul_ptr + 4 * (gi * JPG + jj))  # exact: a small integer
            w = s[:, None] * (q - z[:, None])
            col = b * CK + 4 * (gi * JPG + jj) + t
            tl.store(
                out + 4 * (gi * JPG + jj),
                w.to(w_ptr.dtype.element_ty),
                mask=rmask[:, None] & (col < I)[None, :],
            )
