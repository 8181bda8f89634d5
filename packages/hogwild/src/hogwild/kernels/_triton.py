"""Triton kernels: split-K query-rotation attention and the log-sum-exp reduce.

Program ``(c, r, h·m)`` takes chunk ``c`` (keys ``[start, end)`` of one block), row ``r`` and kv head
``h``; its M rows are the ``G`` query heads sharing that kv head times the ``S`` tokens of the row (so
GQA reuses every key tile ``G·S`` times). Each query row is rotated in-register by its own
``rot[f, r, s]`` in float32 (cos/sin from ``inv_freq``), split into the two RoPE halves so that no
permutation is needed: ``<R(a) q, k> = <q1 c - q2 s, k1> + <q2 c + q1 s, k2>``.
"""

import triton
import triton.language as tl


@triton.jit
def hogwild_split_kernel(
    Q, K, V, BASE, ROT, LIM, INVF, CHUNKS, OP, LSEP,
    qk_scale, R, S, HQ, M_TILES,
    stride_qr, stride_qh, stride_qs,
    stride_kh, stride_kn, stride_vh, stride_vn,
    G: tl.constexpr, HALF: tl.constexpr, DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr,
):  # fmt: skip
    c = tl.program_id(0)
    r = tl.program_id(1)
    hkv = tl.program_id(2) // M_TILES
    mt = tl.program_id(2) % M_TILES
    f = tl.load(CHUNKS + c * 3)
    k_start = tl.load(CHUNKS + c * 3 + 1)
    k_end = tl.load(CHUNKS + c * 3 + 2)
    base = tl.load(BASE + f).to(tl.int64)

    offs_m = mt * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = offs_m < G * S
    g = offs_m // S
    s = offs_m % S
    head = hkv * G + g
    lim = tl.load(LIM + (f * R + r) * S + s, mask=row_ok, other=-1).to(tl.int32)
    rt = tl.load(ROT + (f * R + r) * S + s, mask=row_ok, other=0).to(tl.float32)

    offs_h = tl.arange(0, HALF)
    q_ptr = Q + r * stride_qr + head[:, None] * stride_qh + s[:, None] * stride_qs + offs_h[None, :]
    q1 = tl.load(q_ptr, mask=row_ok[:, None], other=0.0).to(tl.float32)
    q2 = tl.load(q_ptr + HALF, mask=row_ok[:, None], other=0.0).to(tl.float32)
    invf = tl.load(INVF + offs_h)
    ang = rt[:, None] * invf[None, :]
    cs = tl.cos(ang)
    sn = tl.sin(ang)
    qa = ((q1 * cs - q2 * sn) * qk_scale).to(K.dtype.element_ty)
    qb = ((q2 * cs + q1 * sn) * qk_scale).to(K.dtype.element_ty)

    hi = tl.minimum(k_end, tl.max(lim, axis=0) + 1)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, DV], tl.float32)
    offs_d = tl.arange(0, DV)
    k_base = K + hkv.to(tl.int64) * stride_kh
    v_base = V + hkv.to(tl.int64) * stride_vh
    for start in range(k_start, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < hi
        kp = k_base + (base + offs_n)[:, None] * stride_kn + offs_h[None, :]
        k1 = tl.load(kp, mask=n_ok[:, None], other=0.0)
        k2 = tl.load(kp + HALF, mask=n_ok[:, None], other=0.0)
        if IEEE:
            qk = tl.dot(qa, tl.trans(k1), input_precision="ieee")
            qk += tl.dot(qb, tl.trans(k2), input_precision="ieee")
        else:
            qk = tl.dot(qa, tl.trans(k1))
            qk += tl.dot(qb, tl.trans(k2))
        vis = (offs_n[None, :] <= lim[:, None]) & n_ok[None, :]
        qk = tl.where(vis, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(qk - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + (base + offs_n)[:, None] * stride_vn + offs_d[None, :], mask=n_ok[:, None], other=0.0
        )
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    seen = l_i > 0
    out = acc / tl.where(seen, l_i, 1.0)[:, None]
    lse = tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("-inf"))
    row = ((c * R + r) * HQ + head) * S + s
    tl.store(LSEP + row, lse, mask=row_ok)
    # rows that saw no key (an empty padding chunk: all of them) leave their partial unwritten;
    # the reduce gives them weight 0 without reading it
    tl.store(OP + row[:, None] * DV + offs_d[None, :], out, mask=(row_ok & seen)[:, None])


@triton.jit
def lse_reduce_kernel(OP, LSEP, OUT, C, ROWS, DV: tl.constexpr):
    """``OUT[row] = sum_c 2^(lse_c - lse) OP[c, row]`` over the chunks (rows seen by no chunk: 0).

    A chunk whose ``lse_c`` is ``-inf`` (it showed the row no key, or it is padding) weighs 0 and its
    partial is not read (the split kernel did not write it)."""
    row = tl.program_id(0)
    offs_d = tl.arange(0, DV)
    m = tl.full([1], float("-inf"), tl.float32)
    l = tl.zeros([1], tl.float32)
    acc = tl.zeros([DV], tl.float32)
    for c in range(0, C):
        lse = tl.load(LSEP + c * ROWS + row + tl.zeros([1], tl.int32))
        m_new = tl.maximum(m, lse)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m - m_safe)
        w = tl.exp2(lse - m_safe)
        hit = (lse > float("-inf")) & (offs_d < DV)  # [DV]: skip the partials of chunks this row did not see
        o = tl.load(OP + (c * ROWS + row).to(tl.int64) * DV + offs_d, mask=hit, other=0.0)
        acc = acc * alpha + w * o
        l = l * alpha + w
        m = m_new
    res = acc / tl.where(l > 0, l, 1.0)
    tl.store(OUT + row.to(tl.int64) * DV + offs_d, res.to(OUT.dtype.element_ty))
