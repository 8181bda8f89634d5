"""Triton kernel behind :func:`aquakv.kernels.hadamard.fwht_triton` (imported lazily)."""

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
def _tf32_split(t):
    """t = hi + lo with hi exact in TF32 (mantissa truncated to 10 bits) and lo the float32 rest."""
    hi = (t.to(tl.uint32, bitcast=True) & 0xFFFFE000).to(tl.float32, bitcast=True)
    return hi, t - hi


@triton.jit
def _dot_h(a, b, H_LEFT: tl.constexpr, PRECISION: tl.constexpr):
    """a @ b where one operand (a if H_LEFT else b) is a Hadamard factor, exact in any format.

    "tf32x2": the float32 operand is split into TF32 hi + lo, two TF32 products (3xTF32 would
    spend its third product on the zero low part of H).
    """
    if PRECISION == "tf32x2":
        if H_LEFT:
            hi, lo = _tf32_split(b)
            out = tl.dot(a, hi, input_precision="tf32") + tl.dot(a, lo, input_precision="tf32")
        else:
            hi, lo = _tf32_split(a)
            out = tl.dot(hi, b, input_precision="tf32") + tl.dot(lo, b, input_precision="tf32")
    else:
        out = tl.dot(a, b, input_precision=PRECISION, out_dtype=tl.float32)
    return out


@triton.jit
def _left_dot(h, t, SPLIT16: tl.constexpr, PRECISION: tl.constexpr):
    """h @ t for a float32 ``t``: with SPLIT16, as bf16 hi + lo parts (h is exact in bf16)."""
    if SPLIT16:
        hi = t.to(tl.bfloat16)
        lo = (t - hi.to(tl.float32)).to(tl.bfloat16)
        out = tl.dot(h, hi, out_dtype=tl.float32) + tl.dot(h, lo, out_dtype=tl.float32)
    else:
        out = _dot_h(h, t, True, PRECISION)
    return out


@triton.jit
def fwht_tile_kernel(
    x_ptr,
    y_ptr,
    total,
    n_tiles,
    c_blocks,
    scale,
    A: tl.constexpr,  # tile rows
    C: tl.constexpr,  # tile columns
    C_TOTAL: tl.constexpr,  # elements between consecutive tile rows in memory
    RIGHT_BLOCK: tl.constexpr,  # size of the H blocks applied on the right (== C: one full H_C)
    LEFT: tl.constexpr,  # apply H_A on the left (across tile rows)
    RIGHT: tl.constexpr,  # apply H_C on the right (along tile rows)
    SPLIT16: tl.constexpr,
    PRECISION: tl.constexpr,
    STAGES: tl.constexpr,  # software-pipelining depth of the tile loop
):
    """Y = H_A @ X @ H_C for tiles t = pid, pid + grid, ...; tile t is row block t // c_blocks,
    column block t % c_blocks of the [*, A, C_TOTAL] view of the data."""
    in_dtype: tl.constexpr = x_ptr.dtype.element_ty
    first_dtype: tl.constexpr = tl.float32 if in_dtype == tl.float32 else in_dtype
    # The Hadamard factors are built once per program and reused for all its tiles.
    h_right = _hadamard(C, RIGHT_BLOCK, first_dtype)
    h_left = _hadamard(A, A, tl.bfloat16 if SPLIT16 else tl.float32)
    h_left_first = _hadamard(A, A, first_dtype)
    rows = tl.arange(0, A)[:, None]
    cols = tl.arange(0, C)[None, :]
    for t in tl.range(tl.program_id(0), n_tiles, tl.num_programs(0), num_stages=STAGES):
        r = (t // c_blocks).to(tl.int64)
        offs = r * A * C_TOTAL + (t % c_blocks) * C + rows * C_TOTAL + cols
        mask = offs < total
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        if RIGHT:
            # First product: input values and +-1 entries are exact in the input dtype.
            y = _dot_h(x, h_right, False, PRECISION)
            if LEFT:
                y = _left_dot(h_left, y, SPLIT16, PRECISION)
        else:
            y = _dot_h(h_left_first, x, True, PRECISION)
        tl.store(y_ptr + offs, (y * scale).to(y_ptr.dtype.element_ty), mask=mask)
