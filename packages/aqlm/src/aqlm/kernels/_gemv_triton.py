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
def lut_gemv_kernel(
    x_ptr, codes_ptr, cb_ptr, scales_ptr, bias_ptr, y_ptr, part_ptr, count_ptr,
    T, O, I, tiles_per_split, n_split, stride_xt, stride_yt,
    M: tl.constexpr, M_PAD: tl.constexpr, NC: tl.constexpr, G: tl.constexpr, KD: tl.constexpr,
    T_PAD: tl.constexpr, BLOCK_O: tl.constexpr, BI: tl.constexpr, SPLIT_K: tl.constexpr,
    HAS_BIAS: tl.constexpr, FP32: tl.constexpr,
):  # fmt: skip
    """Matvec through per-tile lookup tables (B <= 8).

    For a tile of ``BI`` input groups: ``LUT[t, i, m, c] = x[t, i] . C_m[c]`` (one small tensor-core
    product, ``[T_PAD*BI, KD] @ [KD, M_PAD*NC]``), then
    ``acc[t, o] += sum_{i, m} LUT[t, i, m, code[o, i, m]]``. ``tl.gather`` reads the table from
    shared memory: one 4-byte lookup per code and token replaces decoding ``G`` weights and ``G``
    multiply-adds. Codebooks ``m >= M`` (padding ``M`` to a power of two) are zero columns.
    """
    pid_o = tl.program_id(0)
    pid_s = tl.program_id(1)
    R: tl.constexpr = BI * M_PAD  # codes per output row and tile (and table rows per token)
    offs_k = tl.arange(0, KD)
    # x rows of the table: row (t, i) of a [T_PAD*BI, KD] tile
    offs_xr = tl.arange(0, T_PAD * BI)
    x_t = offs_xr // BI
    x_i = offs_xr % BI
    # All codebooks, transposed: cbT[k, m*NC + c] = C_m[c, k]; zero rows pad G up to KD.
    offs_mc = tl.arange(0, M_PAD * NC)
    cb_mask = (offs_k[:, None] < G) & (offs_mc[None, :] < M * NC)
    cbT = tl.load(cb_ptr + offs_mc[None, :] * G + offs_k[:, None], mask=cb_mask, other=0.0)
    # Codes of the tile, [BLOCK_O, R] with r = i * M_PAD + m: contiguous in memory when
    # M == M_PAD, so int8 codes arrive in 16-byte loads.
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    offs_r = tl.arange(0, R)
    r_i = offs_r // M_PAD
    r_m = offs_r % M_PAD
    codes_row = codes_ptr + offs_o.to(tl.int64)[:, None] * (I * M)
    # Token t's lookup of code (o, r) reads table row t * R + r.
    row_off = tl.arange(0, T_PAD)[:, None, None] * (R * NC) + (offs_r * NC)[None, None, :]
    # Lookups are summed in their own (flat) layout and reduced once after the loop.
    acc = tl.zeros([T_PAD * BLOCK_O * R], dtype=tl.float32)
    n_tiles = tl.cdiv(I, BI)
    start = pid_s * tiles_per_split
    for tile in range(start, tl.minimum(start + tiles_per_split, n_tiles)):
        i0 = tile * BI
        xg = i0 + x_i
        x_mask = (x_t < T)[:, None] & (xg < I)[:, None] & (offs_k < G)[None, :]
        xa = tl.load(
            x_ptr + x_t[:, None] * stride_xt + xg[:, None] * G + offs_k[None, :], mask=x_mask, other=0.0
        )
        # Flat table: entry ((t * BI + i) * M_PAD + m) * NC + c. One dimension only, so
        # tl.gather spreads it over all warps and reads it from shared memory (a 2-D table with
        # whole rows per warp would be gathered with warp shuffles, 8 per lookup).
        lut = tl.reshape(_dot(xa, cbT, FP32), [T_PAD * R * NC])
        c_mask = (offs_o < O)[:, None] & ((i0 + r_i < I) & (r_m < M))[None, :]
        if M == M_PAD:
            c_off = i0 * M + offs_r  # visibly contiguous, for the vectorizer
        else:
            c_off = (i0 + r_i) * M + r_m
        code = tl.load(codes_row + c_off[None, :], mask=c_mask, other=0, eviction_policy="evict_first")
        idx = row_off + (code.to(tl.int32) & (NC - 1))[None, :, :]  # [T_PAD, BLOCK_O, R]
        acc += tl.gather(lut, tl.reshape(idx, [T_PAD * BLOCK_O * R]), axis=0)
    out = tl.sum(tl.reshape(acc, [T_PAD, BLOCK_O, R]), axis=2)
    offs_t = tl.arange(0, T_PAD)
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
