"""Python launchers of the SpQR Triton kernels (:mod:`spqr.kernels._triton`).

``layer`` is a :class:`spqr.quantized_linear.QuantizedLinear` (or any object with its buffers and
attributes). Every launcher reads the stored tensors as they are: nothing is precomputed at layer
construction. The outlier pass of :func:`triton_gemv` needs the inverse permutation, built by one
tiny kernel per call (``O(in_features)``) unless the caller passes ``inv_perm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.kernels.triton_guard import interpreter_enabled, require_triton
from spqr.config import FP16_STATS

MAX_TOKENS = 16  # the GEMV kernel takes up to this many tokens; more go through dequantize + GEMM


@dataclass(frozen=True)
class GemvConfig:
    """Launch settings of both GEMV kernels: ``block_o`` output rows per program, ``block_k`` permuted
    columns per step (>= groupsize for the generic kernel, a multiple of 16 for the fast one),
    ``outlier_chunk`` outliers per row per step of the outlier pass."""

    block_o: int = 32
    block_k: int = 128
    num_warps: int = 4
    num_stages: int = 2
    outlier_chunk: int = 16


# Not tuned on a GPU yet (benchmarks/bench_matvec.py times them): keyed by "one token" / "dot".
TUNING = {1: GemvConfig(32, 128, 4), 16: GemvConfig(64, 128, 4)}


def gemv_supported(layer) -> bool:
    """The GEMV kernel tiles whole groups: it needs a power-of-two groupsize."""
    gs = layer.groupsize
    return gs & (gs - 1) == 0


def _stat_args(layer, stat: str) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bits code for the kernel, codes or fp16 values, qq_scale, qq_zero); dummies where absent."""
    dummy = layer.codes
    if stat == "zero" and layer.sym:
        return 0, dummy, dummy, dummy
    bits = layer.qq_scale_bits if stat == "scale" else layer.qq_zero_bits
    if bits >= FP16_STATS:
        return 16, getattr(layer, stat).contiguous(), dummy, dummy
    return (
        bits,
        getattr(layer, f"{stat}_codes").contiguous(),
        getattr(layer, f"{stat}_qq_scale").contiguous(),
        getattr(layer, f"{stat}_qq_zero").contiguous(),
    )


def invert_perm(perm: torch.Tensor) -> torch.Tensor:
    """``inv`` with ``inv[perm[k]] = k`` (same dtype as ``perm``), one kernel launch."""
    require_triton(perm.device)
    inv = torch.empty_like(perm)
    block = 1024
    _kernels().invert_perm_kernel[(-(-perm.numel() // block),)](perm, inv, perm.numel(), BLOCK=block)
    return inv


# Measured on an H200 (benchmarks/bench_matvec.py --sweep), keyed by "one token" / "several".
FAST_TUNING = {1: GemvConfig(16, 256, 2), 16: GemvConfig(16, 128, 2)}


def _layout_args(layer, lay) -> tuple[tuple, tuple, dict]:
    """What both fast kernels take about the weight: the layout and second-level tensors (a dummy where
    one is absent), the sizes ``(LOW, HIW, G)`` and the constexprs ``HB, GS, B2, STATS16``."""
    dummy = lay.lo
    if lay.stats is not None:
        stats = (lay.stats, dummy, dummy, layer.scale_qq_scale, layer.scale_qq_zero, layer.zero_qq_scale,
                 layer.zero_qq_zero)  # fmt: skip
    else:
        stats = (dummy, lay.scale16, lay.zero16, dummy, dummy, dummy, dummy)
    sizes = (
        lay.lo.shape[1],
        lay.hi.shape[-1] if lay.hi.dim() == 2 else 1,
        layer.in_features // layer.groupsize,
    )
    consts = dict(HB=lay.hi_bits, GS=layer.groupsize, B2=layer.qq_groupsize, STATS16=lay.stats is None)
    return (lay.lo, lay.hi, *stats), sizes, consts


def fast_gemv(
    x: torch.Tensor, layer, bias: torch.Tensor | None = None, *, config: GemvConfig | None = None
) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for ``x [T, in]``, ``T <= 16``, with the
    fast kernel on the layer's :class:`~spqr.kernels.layout.KernelLayout` (built on first use)."""
    from spqr.kernels.layout import layout_of

    require_triton(x.device)
    t, i = x.shape
    o = layer.out_features
    if t > MAX_TOKENS:
        raise ValueError(f"fast_gemv takes at most {MAX_TOKENS} tokens, got {t}")
    lay = layout_of(layer)
    x = x.contiguous()
    y = torch.empty(t, o, dtype=x.dtype, device=x.device)
    if t == 0 or o == 0:
        return y
    td = 1 if t == 1 else 16
    cfg = config or FAST_TUNING[td]
    block_o, block_k = cfg.block_o, cfg.block_k
    if interpreter_enabled():
        block_o, block_k = 16, 32  # small tiles: several steps in the tests
    weights, sizes, consts = _layout_args(layer, lay)
    xp = x.index_select(1, lay.perm)
    _fast_kernels().fast_gemv_kernel[(-(-o // block_o),)](
        x, xp, *weights, layer.outlier_row_offsets, layer.outlier_col_indices, lay.delta,
        bias if bias is not None else lay.lo, y, t, o, i, *sizes, x.stride(0), y.stride(0), **consts,
        BLOCK_O=block_o, BK=block_k, TD=td, OCH=cfg.outlier_chunk, FP32=x.dtype == torch.float32,
        HAS_BIAS=bias is not None, HAS_OUTLIERS=lay.delta.numel() > 0,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return y


def fast_linear_dequant(x: torch.Tensor, layer, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for many tokens: the fast layout is
    dequantized in the permuted column order (coalesced writes), outliers are written at their
    permuted columns, and ``x[:, perm]`` goes through cuBLAS with it."""
    from spqr.kernels.layout import layout_of

    require_triton(x.device)
    lay = layout_of(layer)
    o, i = layer.out_features, layer.in_features
    w = torch.empty(o, i, dtype=x.dtype, device=x.device)
    block_o, block_k = (16, 32) if interpreter_enabled() else (32, 256)
    weights, sizes, consts = _layout_args(layer, lay)
    _fast_kernels().fast_dequant_kernel[(-(-o // block_o), -(-i // block_k))](
        *weights, w, o, i, *sizes, **consts, BLOCK_O=block_o, BK=block_k, num_warps=4
    )
    if lay.pcols.numel():  # the stored-format kernel, fed the outliers' permuted columns
        _kernels().outlier_replace_kernel[(-(-o // 32),)](
            layer.outlier_row_offsets, lay.pcols, layer.outlier_values, w, o, i, BLOCK_O=32, OCH=16
        )
    return torch.nn.functional.linear(x.index_select(1, lay.perm), w, bias)


def triton_gemv(
    x: torch.Tensor,
    layer,
    bias: torch.Tensor | None = None,
    *,
    inv_perm: torch.Tensor | None = None,
    config: GemvConfig | None = None,
) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for ``x [T, in]``, ``T <= 16``.

    Layers with a fast layout (:func:`spqr.kernels.layout.fast_supported`: 2-4-bit codes, groups of a
    multiple of 16, the default statistics) go through :func:`fast_gemv`; the others through the
    generic kernel that reads the stored bitstreams directly (one launch, plus the inverse
    permutation when the layer has outliers and ``inv_perm`` is None)."""
    from spqr.kernels.layout import fast_supported

    if config is None and fast_supported(layer) and x.shape[0] <= MAX_TOKENS:
        return fast_gemv(x, layer, bias)
    require_triton(x.device)
    t, i = x.shape
    o = layer.out_features
    if t > MAX_TOKENS:
        raise ValueError(f"triton_gemv takes at most {MAX_TOKENS} tokens, got {t}")
    if not gemv_supported(layer):
        raise ValueError(f"triton_gemv needs a power-of-two groupsize, got {layer.groupsize}")
    x = x.contiguous()
    y = torch.empty(t, o, dtype=x.dtype, device=x.device)
    if t == 0 or o == 0:
        return y
    td = 1 if t == 1 else 16  # tl.dot needs >= 16 rows
    cfg = config or TUNING[td]
    gs = layer.groupsize
    block_o = cfg.block_o
    block_k = max(cfg.block_k, gs)
    if interpreter_enabled():
        block_o, block_k = min(block_o, 32), max(gs, 32)  # small tiles: several steps in the tests
    has_out = layer.outlier_values.numel() > 0
    if has_out and inv_perm is None:
        inv_perm = invert_perm(layer.perm)
    sbits, sc, sqs, sqz = _stat_args(layer, "scale")
    zbits, zc, zqs, zqz = _stat_args(layer, "zero")
    codes = layer.codes.contiguous()
    dummy = codes
    grid = (-(-o // block_o),)
    _kernels().gemv_kernel[grid](
        x, layer.perm, inv_perm if has_out else dummy, codes, sc, sqs, sqz, zc, zqs, zqz,
        layer.outlier_row_offsets, layer.outlier_col_indices, layer.outlier_values,
        bias if bias is not None else dummy, y,
        t, o, i, codes.shape[1], i // gs, x.stride(0), y.stride(0), float(2 ** (layer.wbits - 1)),
        WBITS=layer.wbits, GS=gs, B2=layer.qq_groupsize, SBITS=sbits, ZBITS=zbits,
        BLOCK_O=block_o, GPT=block_k // gs, TD=td, OCH=cfg.outlier_chunk,
        USE_DOT=td > 1, FP32=x.dtype == torch.float32, HAS_BIAS=bias is not None, HAS_OUTLIERS=has_out,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return y


@dataclass(frozen=True)
class DequantConfig:
    block_o: int = 16
    block_k: int = 256
    num_warps: int = 4


def triton_dequantize(layer, dtype: torch.dtype, *, config: DequantConfig | None = None) -> torch.Tensor:
    """``layer.dequantize().to(dtype)`` (dense ``[out, in]``, original column order, outliers replaced)."""
    codes = layer.codes.contiguous()
    require_triton(codes.device)
    o, i = layer.out_features, layer.in_features
    w = torch.empty(o, i, dtype=dtype, device=codes.device)
    if w.numel() == 0:
        return w
    cfg = config or DequantConfig()
    if interpreter_enabled():
        cfg = DequantConfig(16, 64)
    sbits, sc, sqs, sqz = _stat_args(layer, "scale")
    zbits, zc, zqs, zqz = _stat_args(layer, "zero")
    k = _kernels()
    grid = (-(-o // cfg.block_o), -(-i // cfg.block_k))
    k.dequant_kernel[grid](
        layer.perm, codes, sc, sqs, sqz, zc, zqs, zqz, w,
        o, i, codes.shape[1], i // layer.groupsize, layer.groupsize, float(2 ** (layer.wbits - 1)),
        WBITS=layer.wbits, B2=layer.qq_groupsize, SBITS=sbits, ZBITS=zbits,
        BLOCK_O=cfg.block_o, BLOCK_K=cfg.block_k, num_warps=cfg.num_warps,
    )  # fmt: skip
    if layer.outlier_values.numel():
        k.outlier_replace_kernel[(-(-o // 32),)](
            layer.outlier_row_offsets, layer.outlier_col_indices, layer.outlier_values, w, o, i,
            BLOCK_O=32, OCH=16,
        )  # fmt: skip
    return w


_KERNELS = None
_FAST = None


def _fast_kernels():
    global _FAST
    if _FAST is None:
        from spqr.kernels import _fast

        _FAST = _fast
    return _FAST


def _kernels():
    """Compile-on-first-use: Triton is imported only when a Triton path runs."""
    global _KERNELS
    if _KERNELS is None:
        from spqr.kernels import _triton

        _KERNELS = _triton
    return _KERNELS
