r"""Fast Walsh–Hadamard transform (FWHT) over the last dimension.

For :math:`x \in \mathbb{R}^n`, :math:`n = 2^k`, the unnormalized transform is
:math:`y = H_n x` with the Sylvester–Hadamard matrix

.. math:: H_1 = [1], \qquad H_{2m} = \begin{bmatrix} H_m & H_m \\ H_m & -H_m \end{bmatrix},
          \qquad (H_n)_{ij} = (-1)^{\mathrm{popcount}(i \,\&\, j)},

so :math:`H_n H_n = n I`. The orthonormal variant scales by :math:`n^{-1/2}` and is its own
inverse. Used by HIGGS/AQUA-KV (rotating groups before vector quantization) and QuIP-style
incoherence processing.

Two implementations with one signature:

* ``backend="torch"``: :math:`\log_2 n` butterfly stages in float32 (float64 for float64 input);
* ``backend="triton"``: the Kronecker factorisation :math:`H_n = H_A \otimes H_C` (:math:`AC = n`).
  A row of length :math:`n` read as an :math:`A \times C` row-major tile :math:`X` transforms as
  :math:`H_A X H_C`: two small matrix products on the tensor cores, one read and one write of
  the data. Rows longer than 2^13 (2^12 in float32) take two passes (:math:`n = 16 \cdot C`: transform the
  contiguous :math:`C`-chunks, then a strided :math:`H_{16}` across them). Rows shorter than
  256 are handled as blocks of rows times a (block-diagonal) :math:`H`.

Accuracy: on the GPU a float32 operand is split into a TF32 high and low part, two products
against the exactly representable :math:`\pm 1` factor (relative error about 5e-7); 16-bit inputs
are exact in the first product (:math:`\pm 1` entries, float32 accumulation) and the float32
intermediate is split into a bfloat16 high and low part for the second, so the result is
rounded once, like the torch reference.

Examples
--------
>>> import torch
>>> from aquakv.kernels.hadamard import fwht
>>> x = torch.randn(4, 8)
>>> torch.allclose(fwht(fwht(x)), 8 * x, atol=1e-5)
True
>>> torch.allclose(fwht(fwht(x, normalize=True), normalize=True), x, atol=1e-6)
True
"""

from __future__ import annotations

import math

import torch

from papercore.kernels.triton_guard import interpreter_enabled, resolve_backend

MAX_LOG2 = 15
_FUSED_MAX = 1 << 13  # longest row transformed in one pass (an A x C tile of at most 8192 values)
_FUSED_MAX_FP32 = 1 << 12  # float32 tiles of 8192 (and their 3xTF32 splits) spill registers
_SMALL = 256  # rows shorter than this are processed several at a time (tensor-core tiles need >= 16)

__all__ = ["fwht", "fwht_torch", "fwht_triton", "hadamard_matrix"]


def hadamard_matrix(n: int, dtype: torch.dtype = torch.float32, device=None, normalize: bool = False):
    """The dense Sylvester–Hadamard matrix :math:`H_n` (``n`` a power of two)."""
    _check_size(n)
    idx = torch.arange(n, device=device)
    bits = torch.bitwise_and(idx[:, None], idx[None, :])
    parity = torch.zeros_like(bits)
    while bool(bits.any()):
        parity ^= bits & 1
        bits = bits >> 1
    h = (1 - 2 * parity).to(dtype)
    return h / math.sqrt(n) if normalize else h


def fwht(x: torch.Tensor, normalize: bool = False, *, backend: str = "auto") -> torch.Tensor:
    """Walsh–Hadamard transform of ``x`` over its last dimension.

    Parameters
    ----------
    x : Tensor of shape ``(..., n)``
        ``n`` a power of two, :math:`2 \\le n \\le 2^{15}`; float32, float16, bfloat16 or float64
        (float64: torch backend only).
    normalize : bool
        Scale by :math:`1/\\sqrt{n}` (orthonormal, self-inverse). Default: unnormalized.
    backend : {"auto", "triton", "torch"}
        ``"auto"`` uses the Triton kernel on CUDA tensors and the torch reference elsewhere.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``.
    """
    if not x.is_floating_point():
        raise TypeError(f"fwht needs a floating-point tensor, got {x.dtype}")
    _check_size(x.shape[-1] if x.dim() else 0)
    if resolve_backend(backend, x.device) == "triton" and x.dtype != torch.float64:
        return fwht_triton(x, normalize)
    return fwht_torch(x, normalize)


def fwht_torch(x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Reference: :math:`\\log_2 n` butterfly stages in float32 (float64 for float64 input)."""
    n = x.shape[-1]
    _check_size(n)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = x.reshape(-1, n).to(compute)
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0], y[:, :, 1]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    y = y.reshape(x.shape)
    if normalize:
        y = y * (1.0 / math.sqrt(n))
    return y.to(x.dtype)


def _check_size(n: int) -> None:
    if n < 2 or n > (1 << MAX_LOG2) or n & (n - 1):
        raise ValueError(
            f"FWHT size must be a power of two between 2 and 2^{MAX_LOG2}, got last dimension {n}"
        )


# ----------------------------------------------------------------------------------- Triton
def fwht_triton(x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """The Triton kernel (CUDA tensors, or any tensor under ``TRITON_INTERPRET=1``)."""
    from papercore.kernels.triton_guard import require_triton

    require_triton(x.device)
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"the Triton FWHT supports float32, float16 and bfloat16, got {x.dtype}")
    n = x.shape[-1]
    _check_size(n)
    src = x.contiguous()
    out = torch.empty_like(src)
    rows = src.numel() // n
    if rows == 0:
        return out
    scale = 1.0 / math.sqrt(n) if normalize else 1.0
    if n < _SMALL:
        # Whole rows, several per tile, viewed as [BLOCK_M, K] (K = max(n, 16)) times a block-diagonal H.
        k = max(n, 16)
        block_m = max(16, 4096 // k)
        _launch(
            src,
            out,
            n,
            a=block_m,
            c=k,
            c_total=k,
            right_block=n,
            left=False,
            right=True,
            n_tiles=triton_cdiv(src.numel(), block_m * k),
            c_blocks=1,
            scale=scale,
        )
    elif n <= _fused_max(src.dtype):
        _launch_rows_as_tiles(src, out, rows, n, scale)
    else:
        # Two passes: H_n = H_16 (x) H_C. First the contiguous C-chunks, then across them.
        # A 16-bit input goes through a float32 intermediate so the result is rounded once.
        c = n // 16
        mid = (
            out
            if src.dtype == torch.float32
            else torch.empty(src.shape, dtype=torch.float32, device=src.device)
        )
        _launch_rows_as_tiles(src, mid, rows * 16, c, 1.0)
        block_c = min(c, 256)
        _launch(
            mid,
            out,
            n,
            a=16,
            c=block_c,
            c_total=c,
            right_block=block_c,
            left=True,
            right=False,
            n_tiles=rows * (c // block_c),
            c_blocks=c // block_c,
            scale=scale,
        )
    return out.view(x.shape)


def _fused_max(dtype: torch.dtype) -> int:
    return _FUSED_MAX_FP32 if dtype == torch.float32 else _FUSED_MAX


def _launch_rows_as_tiles(src, out, rows, n, scale):
    """256 <= n <= 2^13: each row is one [A, C] tile transformed as H_A X H_C (A = 2^floor(k/2))."""
    a = 1 << (int(math.log2(n)) // 2)
    _launch(
        src,
        out,
        n,
        a=a,
        c=n // a,
        c_total=n // a,
        right_block=n // a,
        left=True,
        right=True,
        n_tiles=rows,
        c_blocks=1,
        scale=scale,
    )


# Launch tuning: (num_warps, programs per SM, pipelining stages) by (row length, element bytes).
# Each program loops over tiles, so the Hadamard factors it builds in registers are reused.
# Chosen by packages/aquakv/benchmarks/tune_fwht.py on an H200 (when the kernel was papercore's; the
# numbers: docs/benchmarks/aquakv.md, section "Fast Walsh-Hadamard transform").
_DEFAULT_TUNING = (2, 8, 3)
TUNING: dict[tuple[int, int], tuple[int, int, int]] = {
    (16, 4): (8, 8, 3), (128, 4): (4, 8, 3), (4096, 4): (4, 8, 3),
    (16, 2): (8, 2, 3), (4096, 2): (4, 8, 3), (8192, 2): (4, 2, 3), (16384, 2): (4, 8, 2), (32768, 2): (8, 2, 3),
}  # fmt: skip
# float32: the data operand split into TF32 hi + lo, two products ("tf32x2", relative error ~5e-7).
# "tf32x3" and "ieee" also work; both were slower (0.59 and 0.38 of copy bandwidth at n=1024).
FP32_PRECISION = "tf32x2"


def _launch(src, out, n, *, a, c, c_total, right_block, left, right, n_tiles, c_blocks, scale):
    num_warps, per_sm, stages = TUNING.get((n, src.element_size()), _DEFAULT_TUNING)
    grid = (max(1, min(n_tiles, per_sm * _sm_count(src.device))),)
    _kernels().fwht_tile_kernel[grid](
        src,
        out,
        src.numel(),
        n_tiles,
        c_blocks,
        scale,
        A=a,
        C=c,
        C_TOTAL=c_total,
        RIGHT_BLOCK=right_block,
        LEFT=left,
        RIGHT=right,
        SPLIT16=_split16(src.dtype),
        PRECISION=FP32_PRECISION if src.dtype == torch.float32 else "tf32",
        STAGES=stages,
        num_warps=num_warps,
    )


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 2  # the interpreter: a couple of programs exercise the tile loop


def _split16(dtype: torch.dtype) -> bool:
    # bf16 hi/lo splitting keeps 16-bit results rounded once; the interpreter has no bf16 math.
    return dtype != torch.float32 and not interpreter_enabled()


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


_KERNELS = None


def _kernels():
    """Compile-on-first-use: Triton is imported only when a Triton path runs."""
    global _KERNELS
    if _KERNELS is None:
        from aquakv.kernels import _hadamard_triton

        _KERNELS = _hadamard_triton
    return _KERNELS
