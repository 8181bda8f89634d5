"""Triton kernels behind :mod:`aqlm.kernels.triton_gemv` and :mod:`aqlm.kernels.triton_dequant`
(imported lazily, so importing :mod:`aqlm` never imports Triton).

Notation: ``x [T, I*G]`` tokens, ``codes [O, I, M]`` (signed storage of unsigned B-bit codes),
``codebooks [M, NC = 2^B, 1, G]``, ``scales [O]``, ``y [T, O]``.
"""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, FP32: tl.constexpr):
    # 16-bit operands multiply exactly into the float32 accumulator; float32 ones must not
    # be rounded to TF32, or the result would miss the 1e-5 float32 tolerance.
    if FP32:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a, b, out_dtype=tl.float32)
    return out


@triton.jit
def _store_rows(acc, offs_t, offs_o, T, O, scales_ptr, bias_ptr, y_ptr, stride_yt, HAS_BIAS: tl.constexpr):
    """y[t, o] = scale[o] * acc[t, o] (+ bias[o]), rounded once to y's dtype."""
    o_mask = offs_o < O
    out = acc * tl.load(scales_ptr + offs_o, mask=o_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_o, mask=o_mask, other=0.0).to(tl.float32)[None, :]
    mask = (offs_t[:, None] < T) & o_mask[None, :]
    tl.store(y_ptr + offs_t[:, None] * stride_yt + offs_o[None, :], out.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _finish(
    acc, offs_t, offs_o, T, O, pid_o, pid_s,
    scales_ptr, bias_ptr, y_ptr, stride_yt, part_ptr, count_ptr, n_split,
    SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr,
):  # fmt: skip
    """Write the result; with split-K, the last of the ``n_split`` programs of a row block to
    finish sums the partials. One launch, no zero-filled workspace and no separate reduction
    kernel: at batch 1 those would cost about as much as the matvec itself."""
    if not SPLIT_K:
        _store_rows(acc, offs_t, offs_o, T, O, scales_ptr, bias_ptr, y_ptr, stride_yt, HAS_BIAS)
    else:
        mask = (offs_t[:, None] < T) & (offs_o[None, :] < O)
        part = part_ptr + offs_t[:, None] * O + offs_o[None, :]
        tl.store(part + pid_s * T * O, acc, mask=mask)
        tl.debug_barrier()  # every thread's partial is written before the counter moves
        arrived = tl.atomic_add(count_ptr + pid_o, 1, sem="acq_rel")
        if arrived == n_split - 1:
            total = tl.zeros_like(acc)
            for s in range(n_split):
                # .cg: read the other programs' partials from L2, never from a stale L1 line
                total += tl.load(part + s * T * O, mask=mask, other=0.0, cache_modifier=".cg")
            tl.atomic_xchg(count_ptr + pid_o, 0)  # re-arm the counter for the next launch
            _store_rows(total, offs_t, offs_o, T, O, scales_ptr, bias_ptr, y_ptr, stride_yt, HAS_BIAS)


@triton.jit
def lut_build_kernel(x_ptr, cb_ptr, lut_ptr, T, I, stride_xt,
                     M: tl.constexpr, NC: tl.constexpr, G: tl.constexpr, KD: tl.constexpr,
                     BI: tl.constexpr, T_PAD: tl.constexpr, FP32: tl.constexpr):  # fmt: skip
    """``LUT[(i M + m), c, t] = x[t, i] . C_m[c]`` for ``BI`` input groups and codebook ``m`` (one
    small tensor-core product, ``[T_PAD*BI, KD] @ [KD, NC]``; zero rows pad the tokens to ``T_PAD``
    and zero columns pad ``G`` to ``KD``). The tokens of an entry are contiguous."""
    pid = tl.program_id(0)
    m = tl.program_id(1)
    r = tl.arange(0, T_PAD * BI)
    t = r // BI
    i = pid * BI + r % BI
    k = tl.arange(0, KD)
    xa = tl.load(x_ptr + t[:, None] * stride_xt + i[:, None] * G + k[None, :],
                 mask=((t < T) & (i < I))[:, None] & (k < G)[None, :], other=0.0)  # fmt: skip
    c = tl.arange(0, NC)
    cbT = tl.load(cb_ptr + (m * NC + c[None, :]) * G + k[:, None], mask=(k < G)[:, None], other=0.0)
    lut = _dot(xa, cbT, FP32)
    dst = lut_ptr + (((i * M + m) * NC)[:, None] + c[None, :]) * T_PAD + t[:, None]
    tl.store(dst, lut.to(lut_ptr.dtype.element_ty), mask=(i < I)[:, None])


@triton.jit
def _lookup(lut_ptr, code, r, acc0, acc1, acc2, acc3, NC: tl.constexpr, T_PAD: tl.constexpr):
    """``acc_t += LUT[r, code, t]`` elementwise for a ``[BLOCK_O, 16]`` tile of codes (summed over
    the 16 columns after the loop: a reduction inside the loop into a loop-carried value trips an
    assertion of Triton 3.6's thread-locality pass with float32 tables)."""
    idx = (r[None, :] * NC + (code.to(tl.int32) & (NC - 1))) * T_PAD
    acc0 += tl.load(lut_ptr + idx).to(tl.float32)
    if T_PAD > 1:
        acc1 += tl.load(lut_ptr + idx + 1).to(tl.float32)
    if T_PAD > 2:
        acc2 += tl.load(lut_ptr + idx + 2).to(tl.float32)
        acc3 += tl.load(lut_ptr + idx + 3).to(tl.float32)
    return acc0, acc1, acc2, acc3


@triton.jit
def lut_gemv_kernel(
    lut_ptr, codes_ptr, scales_ptr, bias_ptr, y_ptr, part_ptr, count_ptr,
    T, O, IM, chunks_per_split, n_split, stride_yt,
    NC: tl.constexpr, T_PAD: tl.constexpr, BLOCK_O: tl.constexpr, U: tl.constexpr,
    SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr,
):  # fmt: skip
    """Matvec through the lookup table of :func:`lut_build_kernel` (B <= 8, T <= 4 tokens).

    One output row per thread. Each step reads ``U`` 16-byte vectors of codes per row, so the 32
    lookups of a warp instruction all fall in one table row of ``2^B`` entries (a few cache lines),
    and adds ``LUT[r, code, t]`` per token: one 2-byte gather replaces decoding ``g`` weights and
    ``g`` multiply-adds per code. The codes of the next step are loaded one step ahead.
    """
    pid_o = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    omask = offs_o < O
    offs_c = tl.arange(0, 16)
    codes_row = codes_ptr + offs_o.to(tl.int64)[:, None] * IM
    acc0 = tl.zeros([BLOCK_O, 16], dtype=tl.float32)
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    CH: tl.constexpr = 16 * U
    c_start = pid_s * chunks_per_split
    c_end = tl.minimum(c_start + chunks_per_split, IM // CH)
    ca = tl.load(codes_row + (c_start * CH + offs_c)[None, :], mask=omask[:, None], other=0,
                 eviction_policy="evict_first")  # fmt: skip
    cb = ca
    if U > 1:
        cb = tl.load(codes_row + (c_start * CH + 16 + offs_c)[None, :], mask=omask[:, None], other=0,
                     eviction_policy="evict_first")  # fmt: skip
    for ch in range(c_start, c_end):
        nxt = tl.minimum(ch + 1, c_end - 1) * CH + offs_c
        na = tl.load(codes_row + nxt[None, :], mask=omask[:, None], other=0, eviction_policy="evict_first")
        nb = na
        if U > 1:
            nb = tl.load(codes_row + (nxt + 16)[None, :], mask=omask[:, None], other=0,
                         eviction_policy="evict_first")  # fmt: skip
        acc0, acc1, acc2, acc3 = _lookup(lut_ptr, ca, ch * CH + offs_c, acc0, acc1, acc2, acc3, NC, T_PAD)
        if U > 1:
            acc0, acc1, acc2, acc3 = _lookup(lut_ptr, cb, ch * CH + 16 + offs_c, acc0, acc1, acc2, acc3, NC,
                                             T_PAD)  # fmt: skip
        ca = na
        cb = nb
    offs_t = tl.arange(0, T_PAD)
    tsel = offs_t[:, None]
    s0, s1, s2, s3 = tl.sum(acc0, axis=1), tl.sum(acc1, axis=1), tl.sum(acc2, axis=1), tl.sum(acc3, axis=1)
    out = tl.where(
        tsel == 0,
        s0[None, :],
        tl.where(tsel == 1, s1[None, :], tl.where(tsel == 2, s2[None, :], s3[None, :])),
    )
    _finish(out, offs_t, offs_o, T, O, pid_o, pid_s, scales_ptr, bias_ptr, y_ptr, stride_yt, part_ptr,
            count_ptr, n_split, SPLIT_K, HAS_BIAS)  # fmt: skip


@triton.jit
def _decode_tile(codes_row, cb_ptr, gi, offs_j, row_mask, I, M: tl.constexpr, NC: tl.constexpr,
                 G: tl.constexpr, G_PAD: tl.constexpr, BLOCK_O: tl.constexpr, BI: tl.constexpr,
                 CB_CACHE: tl.constexpr):  # fmt: skip
    """w[o, i, j] = sum_m C_m[code[o, i, m], j] in float32 for a [BLOCK_O, BI] tile of groups."""
    c_mask = row_mask[:, None] & (gi < I)[None, :]
    j_mask = offs_j[None, None, :] < G
    w = tl.zeros([BLOCK_O, BI, G_PAD], dtype=tl.float32)
    for m in tl.static_range(M):
        code = tl.load(
            codes_row[:, None] + gi[None, :] * M + m, mask=c_mask, other=0, eviction_policy="evict_first"
        )
        entry = (m * NC + (code.to(tl.int32) & (NC - 1))) * G
        # G consecutive values per code: 16-byte loads for G = 8 in 16-bit
        cb_ptrs = cb_ptr + entry[:, :, None] + offs_j[None, None, :]
        if CB_CACHE == "":
            # keep the codebooks in L2 while the codes stream past
            vec = tl.load(cb_ptrs, mask=j_mask, other=0.0, eviction_policy="evict_last")
        else:
            vec = tl.load(cb_ptrs, mask=j_mask, other=0.0, cache_modifier=CB_CACHE)
        w += vec.to(tl.float32)
    return w


@triton.jit
def direct_gemv_kernel(
    x_ptr, codes_ptr, cb_ptr, scales_ptr, bias_ptr, y_ptr, part_ptr, count_ptr,
    T, O, I, tiles_per_split, n_split, stride_xt, stride_yt,
    M: tl.constexpr, NC: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr, TD: tl.constexpr,
    BLOCK_O: tl.constexpr, BI: tl.constexpr, SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr,
    FP32: tl.constexpr, CB_CACHE: tl.constexpr,
):  # fmt: skip
    """Matvec that decodes each weight group from the codebooks in global memory (any M, B, G).

    One token (``TD == 1``): multiply and reduce in registers. Several: the decoded tile goes
    through a tensor-core product with the tokens padded to ``TD >= 16`` rows, so each weight is
    decoded once for all tokens.
    """
    pid_o = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    offs_i = tl.arange(0, BI)
    offs_j = tl.arange(0, G_PAD)
    offs_t = tl.arange(0, TD)
    row_mask = offs_o < O
    codes_row = codes_ptr + offs_o.to(tl.int64) * (I * M)
    acc = tl.zeros([TD, BLOCK_O], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_O, BI], dtype=tl.float32)  # one token: reduced across groups at the end
    n_tiles = tl.cdiv(I, BI)
    start = pid_s * tiles_per_split
    for tile in range(start, tl.minimum(start + tiles_per_split, n_tiles)):
        gi = tile * BI + offs_i
        w = _decode_tile(codes_row, cb_ptr, gi, offs_j, row_mask, I, M, NC, G, G_PAD, BLOCK_O, BI, CB_CACHE)
        x_cols = gi[:, None] * G + offs_j[None, :]  # [BI, G_PAD]
        x_mask = (gi < I)[:, None] & (offs_j < G)[None, :]
        if TD == 1:
            xv = tl.load(x_ptr + x_cols, mask=x_mask, other=0.0).to(tl.float32)
            acc1 += tl.sum(w * xv[None, :, :], axis=2)
        else:
            xs = tl.load(
                x_ptr + offs_t[:, None, None] * stride_xt + x_cols[None, :, :],
                mask=(offs_t < T)[:, None, None] & x_mask[None, :, :],
                other=0.0,
            )
            xs = tl.reshape(xs, [TD, BI * G_PAD])
            wt = tl.trans(tl.reshape(w, [BLOCK_O, BI * G_PAD]))
            if not FP32:
                wt = wt.to(xs.dtype)  # 16-bit tensor-core operands, like the dense weight
            acc += _dot(xs, wt, FP32)
    if TD == 1:
        acc = tl.sum(acc1, axis=1)[None, :]
    _finish(acc, offs_t, offs_o, T, O, pid_o, pid_s, scales_ptr, bias_ptr, y_ptr, stride_yt, part_ptr,
            count_ptr, n_split, SPLIT_K, HAS_BIAS)  # fmt: skip


@triton.jit
def dequant_kernel(
    codes_ptr, cb_ptr, scales_ptr, w_ptr, O, I,
    M: tl.constexpr, NC: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr,
    BLOCK_O: tl.constexpr, BI: tl.constexpr, CB_CACHE: tl.constexpr,
):  # fmt: skip
    """W[o, i*G + j] = scale[o] * sum_m C_m[code[o, i, m], j] for a [BLOCK_O, BI] tile of groups."""
    offs_o = tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)
    gi = tl.program_id(1) * BI + tl.arange(0, BI)
    offs_j = tl.arange(0, G_PAD)
    row_mask = offs_o < O
    codes_row = codes_ptr + offs_o.to(tl.int64) * (I * M)
    w = _decode_tile(codes_row, cb_ptr, gi, offs_j, row_mask, I, M, NC, G, G_PAD, BLOCK_O, BI, CB_CACHE)
    w *= tl.load(scales_ptr + offs_o, mask=row_mask, other=0.0).to(tl.float32)[:, None, None]
    cols = gi[:, None] * G + offs_j[None, :]
    mask = row_mask[:, None, None] & ((gi < I)[:, None] & (offs_j < G)[None, :])[None, :, :]
    out = w_ptr + offs_o.to(tl.int64)[:, None, None] * (I * G) + cols[None, :, :]
    tl.store(out, w.to(w_ptr.dtype.element_ty), mask=mask)
