"""Python launchers of the SpQR Triton kernels (:mod:`spqr.kernels._triton`).

``layer`` is a :class:`spqr.quantized_linear.QuantizedLinear` (or any object with its buffers and
attributes). The fast launchers (:func:`fast_gemv`, :func:`fast_linear_dequant`) read a layer that
holds the kernel layout (``layer.layout == "kernel"``, :mod:`spqr.kernels.layout`); the generic
ones read the stored format. Nothing is cached on the layer. The outlier pass of the generic GEMV
needs the inverse permutation, built by one tiny kernel per call (``O(in_features)``) unless the
caller passes ``inv_perm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papercore.kernels.splitk import split_plan, splitk_workspace
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


# The fast GEMV decodes each code once for up to this many tokens; more go through dequantize + GEMM.
FAST_MAX_TOKENS = 4


@dataclass(frozen=True)
class FastConfig:
    """Launch settings of the fast GEMV (:mod:`spqr.kernels._fast`): ``block_o`` rows per program
    (one per thread and repeat), ``split`` programs along the input (0: enough for
    ``programs_per_sm`` programs per SM in all)."""

    block_o: int = 128
    num_warps: int = 4
    split: int = 0
    programs_per_sm: int = 5


# The best of a sweep of a development version on an H100 (7B gate_proj: 128 rows, 8-way split-K);
# benchmarks/bench_matvec.py --sweep re-tunes it on the device at hand.
FAST_TUNING = FastConfig()


def _kernel_layout(layer):
    """The layer's kernel-layout geometry; a clear error for a layer that holds the stored format."""
    from spqr.kernels.layout import geometry

    if getattr(layer, "layout", "stored") != "kernel":
        raise ValueError(
            "the fast kernels read the kernel layout: convert the layer with to_kernel_layout_() "
            "(load_quantized and quantize_ do), or use the generic kernels"
        )
    return geometry(layer)


def _fast_consts(layer, geo) -> dict:
    from spqr.kernels.layout import PLANES, PMIN, SLOTS

    w = geo.wbits
    return dict(W=w, P=PLANES[w], GPS=geo.groups_per_slab, JPG=geo.codes_per_group_step, K=SLOTS[w],
                PMIN=PMIN[w], B2=layer.qq_groupsize, SPG=geo.slabs_per_stat,
                STATS16=layer.qq_scale_bits >= FP16_STATS)  # fmt: skip


_MAGIC = 0x4B000000  # the bits of 2^23 in float32; passed as an argument so it sits in a register


def fast_gemv(
    x: torch.Tensor, layer, bias: torch.Tensor | None = None, *, config: FastConfig | None = None
) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for ``x [T, in]``, ``T <= 4``, with the
    fast kernel on the layer's kernel layout (:mod:`spqr.kernels.layout`)."""
    from spqr.kernels.layout import xmul

    require_triton(x.device)
    geo = _kernel_layout(layer)
    t, i = x.shape
    o = layer.out_features
    if t > FAST_MAX_TOKENS:
        raise ValueError(f"fast_gemv takes at most {FAST_MAX_TOKENS} tokens, got {t}")
    x = x.contiguous()
    y = torch.empty(t, o, dtype=x.dtype, device=x.device)
    if t == 0 or o == 0:
        return y
    cfg = config or FAST_TUNING
    block_o, nw = cfg.block_o, cfg.num_warps
    prologue_cols = max(geo.slab, 512)  # columns of x[perm] per step of the prologue
    if interpreter_enabled():
        block_o, nw, prologue_cols = 16, 1, geo.slab  # small programs: several of them in the tests
    t_pad = 1 << (t - 1).bit_length()
    nb, ck = geo.num_slabs, geo.slab
    n_oblocks = -(-o // block_o)
    split, sps = split_plan(
        nb, n_oblocks, 2 if interpreter_enabled() else cfg.split, cfg.programs_per_sm, x.device
    )
    xs = torch.empty(t_pad, nb * ck, dtype=torch.float32, device=x.device)  # x[perm] * 2^-PP per token
    gs = torch.empty(t_pad, nb * geo.groups_per_slab, 2, dtype=torch.float32, device=x.device)
    part, count = splitk_workspace(split, (t_pad, o), n_oblocks, x.device)
    planes = layer.planes
    st = getattr(layer, "stat_codes", None)
    _fast_kernels().gemv_kernel[(n_oblocks, split)](
        x, layer.perm, xmul(geo.wbits, x.device), xs, gs, planes, st if st is not None else planes,
        layer.stat_coef, layer.outlier_row_offsets, layer.outlier_perm_cols, layer.outlier_values,
        bias if bias is not None else planes, y, part, count, t, o, i, nb, sps, split, x.stride(0), y.stride(0),
        _MAGIC, **_fast_consts(layer, geo), T_PAD=t_pad, BLOCK_O=block_o, PB=prologue_cols, SPLIT_K=split > 1,
        HAS_BIAS=bias is not None, HAS_OUTLIERS=layer.outlier_values.numel() > 0, num_warps=nw,
    )  # fmt: skip
    return y


def fast_dequantize_permuted(layer, dtype: torch.dtype) -> torch.Tensor:
    """The dense ``[out, in]`` weight in the **permuted** column order (outliers replaced), in
    ``dtype``, from the kernel layout: ``W_perm[:, k] = W[:, perm[k]]``."""
    from spqr.kernels.layout import xmul

    geo = _kernel_layout(layer)
    planes = layer.planes
    require_triton(planes.device)
    o, i = layer.out_features, layer.in_features
    w = torch.empty(o, i, dtype=dtype, device=planes.device)
    if w.numel() == 0:
        return w
    block_o = 16 if interpreter_enabled() else 64
    st = getattr(layer, "stat_codes", None)
    _fast_kernels().dequant_kernel[(-(-o // block_o), geo.num_slabs)](
        planes, st if st is not None else planes, layer.stat_coef, xmul(geo.wbits, planes.device), w, o, i,
        _MAGIC, **_fast_consts(layer, geo), BLOCK_O=block_o, num_warps=1 if interpreter_enabled() else 4,
    )  # fmt: skip
    if layer.outlier_values.numel():  # the stored-format kernel, fed the outliers' permuted columns
        _kernels().outlier_replace_kernel[(-(-o // 32),)](
            layer.outlier_row_offsets,
            layer.outlier_perm_cols,
            layer.outlier_values,
            w,
            o,
            i,
            BLOCK_O=32,
            OCH=16,
        )
    return w


def fast_linear_dequant(x: torch.Tensor, layer, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for many tokens: the kernel layout is
    dequantized in the permuted column order (:func:`fast_dequantize_permuted`) and ``x[:, perm]``
    goes through cuBLAS with it."""
    require_triton(x.device)
    w = fast_dequantize_permuted(layer, x.dtype)
    return torch.nn.functional.linear(x.index_select(1, layer.perm.long()), w, bias)


def triton_gemv(
    x: torch.Tensor,
    layer,
    bias: torch.Tensor | None = None,
    *,
    inv_perm: torch.Tensor | None = None,
    config: GemvConfig | None = None,
) -> torch.Tensor:
    """``F.linear(x, layer.dequantize().to(x.dtype), bias)`` for ``x [T, in]``, ``T <= 16``.

    A layer that holds the kernel layout goes through :func:`fast_gemv` (up to
    ``FAST_MAX_TOKENS`` tokens; ``config`` does not apply); the others through the generic kernel
    that reads the stored bitstreams directly (one launch, plus the inverse permutation when the
    layer has outliers and ``inv_perm`` is None)."""
    if getattr(layer, "layout", "stored") == "kernel":
        if config is not None:
            raise ValueError("the generic GEMV reads the stored layout; this layer holds the kernel layout")
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
    if getattr(layer, "layout", "stored") == "kernel":
        w_perm = fast_dequantize_permuted(layer, dtype)
        return torch.empty_like(w_perm).index_copy_(1, layer.perm.long(), w_perm)
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
