"""Triton kernel behind :func:`papercore.kernels.fwht.fwht_triton` (imported lazily)."""

import triton
import triton.language as tl


@triton.jit
def _hadamard(K: tl.constexpr, BLOCK: tl.constexpr, dtype: tl.constexpr):
    """K x K block-diagonal matrix with H_BLOCK blocks: H[i, j] = (-1)^popcount(i & j) within a block."""
    i = tl.arange(0, K)[:, None]
    j = tl.arange(0, K)[None, :]
    v = (i & (BLOCK - 1)) & (j & (BLOCK - 1))
    v = v ^ (v >> 8)  # parity of up to 16 bits by xor-folding
    v = v ^ (v >> 4)
    v = v ^ (v >> 2)
    v = v ^ (v >> 1)
    h = 1.0 - 2.0 * (v & 1).to(tl.float32)
    if BLOCK < K:
        h = tl.where((i // BLOCK) == (j // BLOCK), h, 0.0)
    return h.to(dtype)


@triton.jit
def _left_dot(h, t, SPLIT16: tl.constexpr, PRECISION: tl.constexpr):
    """h @ t for a float32 ``t``: with SPLIT16, as bf16 hi + lo parts (h is exact in bf16)."""
    if SPLIT16:
        hi = t.to(tl.bfloat16)
        lo = (t - hi.to(tl.float32)).to(tl.bfloat16)
        out = tl.dot(h, hi, out_dtype=tl.float32) + tl.dot(h, lo, out_dtype=tl.float32)
    else:
        out = tl.dot(h, t, input_precision=PRECISION, out_dtype=tl.float32)
    return out


@triton.jit
def fwht_tile_kernel(
    x_ptr,
    y_ptr,
    total,
    scale,
    A: tl.constexpr,  # tile rows
    C: tl.constexpr,  # tile columns
    C_TOTAL: tl.constexpr,  # elements between consecutive tile rows in memory
    RIGHT_BLOCK: tl.constexpr,  # size of the H blocks applied on the right (== C: one full H_C)
    LEFT: tl.constexpr,  # also apply H_A on the left (across tile rows)
    SPLIT16: tl.constexpr,
    PRECISION: tl.constexpr,
    RIGHT: tl.constexpr = True,
):
    """Y = H_A @ X @ H_C for the [A, C] tile of program (pid0, pid1); the caller picks the view."""
    pid_r = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1)
    rows = tl.arange(0, A)[:, None]
    cols = tl.arange(0, C)[None, :]
    offs = pid_r * A * C_TOTAL + pid_c * C + rows * C_TOTAL + cols
    mask = offs < total
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    in_dtype: tl.constexpr = x_ptr.dtype.element_ty
    first_dtype: tl.constexpr = tl.float32 if in_dtype == tl.float32 else in_dtype
    if RIGHT:
        # First product: input values and +-1 entries are exact in the input dtype.
        t = tl.dot(x, _hadamard(C, RIGHT_BLOCK, first_dtype), input_precision=PRECISION, out_dtype=tl.float32)
        if LEFT:
            t = _left_dot(_hadamard(A, A, tl.bfloat16 if SPLIT16 else tl.float32), t, SPLIT16, PRECISION)
    else:
        t = tl.dot(_hadamard(A, A, first_dtype), x, input_precision=PRECISION, out_dtype=tl.float32)
    t = t * scale
    tl.store(y_ptr + offs, t.to(y_ptr.dtype.element_ty), mask=mask)
