"""Every kernel path of spqr.kernels equals F.linear(x, layer.dequantize(), bias), computed in float64.

Triton kernels run on CPU under TRITON_INTERPRET=1 (skipped otherwise), in float32 and float16;
bfloat16 (which the interpreter cannot compute) through dequantize comparisons here, and through
the kernels in the GPU-only tests at the end.
"""

import pytest
import torch
import torch.nn.functional as F

from papercore.kernels.packing import pack_bits
from papercore.kernels.triton_guard import triton_mode
from papercore.testing import assert_close_rel, gpu, tolerance, triton_or_skip
from spqr.config import SpQRConfig
from spqr.engine import quantize_weight
from spqr.kernels import select_path, spqr_linear
from spqr.kernels.triton_ops import (
    FAST_MAX_TOKENS,
    MAX_TOKENS,
    GemvConfig,
    fast_gemv,
    invert_perm,
    triton_dequantize,
    triton_gemv,
)
from spqr.quantized_linear import QuantizedLinear, build_csr

OUT, IN = 48, 96  # 48 rows: a partial row block; 96 columns of 3 bits: codes straddle words
# The fast kernel factors the statistics out of its inner loop: its float32 sums carry terms up to
# 2^9 |x| that cancel, which costs about 4 bits of float32 (see spqr.kernels._fast).
FAST_TOL = 5e-5


def random_layer(wbits=3, groupsize=16, qq_bits=3, outliers=0.03, sym=False, bias=True, seed=0, kernel=False):
    """A QuantizedLinear with random codes, statistics, permutation and outliers (format-level tests),
    in the stored format, or converted to the kernel layout (where its configuration has one)."""
    layer = random_layer_sized(wbits, groupsize, qq_bits, outliers, sym, bias, seed, OUT, IN)
    return layer.to_kernel_layout_() if kernel else layer


def random_layer_sized(wbits=3, groupsize=16, qq_bits=3, outliers=0.03, sym=False, bias=True, seed=0, out=OUT,
                       inp=IN, full_row=True):  # fmt: skip
    OUT, IN = out, inp  # noqa: N806
    gen = torch.Generator().manual_seed(seed)
    groups = IN // groupsize
    mask = torch.rand(OUT, IN, generator=gen) < outliers
    mask[5] = full_row  # a row full of outliers
    mask[6] = False  # and one without
    if not outliers:
        mask[:] = False
    q = QuantizedLinear(IN, OUT, wbits=wbits, groupsize=groupsize, qq_scale_bits=qq_bits, qq_zero_bits=qq_bits,
                        qq_groupsize=16, sym=sym, nnz=int(mask.sum()), bias=bias)  # fmt: skip
    with torch.no_grad():
        q.codes.copy_(
            pack_bits(torch.randint(0, 2**wbits, (OUT, IN), generator=gen, dtype=torch.int32), wbits)
        )
        q.perm.copy_(torch.randperm(IN, generator=gen).to(q.perm.dtype))
        for stat, bits in q._stats():
            if bits < 16:
                c = torch.randint(0, 2**bits, (OUT * groups,), generator=gen, dtype=torch.int32)
                getattr(q, f"{stat}_codes").copy_(pack_bits(c, bits))
                getattr(q, f"{stat}_qq_scale").copy_(
                    (torch.rand(OUT // 16, groups, generator=gen) * 0.1 + 0.01).half()
                )
                getattr(q, f"{stat}_qq_zero").copy_(
                    (torch.rand(OUT // 16, groups, generator=gen) * 2**bits).half()
                )
            else:
                lo = 0.01 if stat == "scale" else 0.0
                getattr(q, stat).copy_((torch.rand(OUT, groups, generator=gen) * 2**wbits * 0.1 + lo).half())
        offsets, cols, vals = build_csr(mask, torch.randn(int(mask.sum()), generator=gen) * 3, q.perm.dtype)
        q.outlier_row_offsets.copy_(offsets)
        q.outlier_col_indices.copy_(cols)
        q.outlier_values.copy_(vals)
        if bias:
            q.bias.copy_(torch.randn(OUT, generator=gen))
    return q


def expected(x, layer, bias):
    return F.linear(x.double(), layer.dequantize().double(), None if bias is None else bias.double())


def make_x(tokens, seed=1):
    shape = (2, 3, IN) if tokens == "3d" else (tokens, IN)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


LAYERS = {
    "3bit-outliers": dict(wbits=3),
    "4bit-outliers": dict(wbits=4),
    "3bit-no-outliers": dict(wbits=3, outliers=0.0),
    "4bit-no-outliers-nobias": dict(wbits=4, outliers=0.0, bias=False),
    "3bit-fp16-stats": dict(wbits=3, qq_bits=16, groupsize=32),  # gptq-like
    "4bit-sym-qq4": dict(wbits=4, qq_bits=4, sym=True),
    "2bit-gs8": dict(wbits=2, groupsize=8, qq_bits=2),
}


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("tokens", [1, 2, 7, 64, "3d"])
def test_spqr_linear_matches_reference(name, tokens):
    """The stored format: the generic kernels (the fast ones are tested in test_layout.py)."""
    triton_or_skip()
    layer = random_layer(**LAYERS[name])
    x = make_x(tokens)
    path = select_path(x, layer, backend="triton")
    n = x.numel() // IN
    assert path == ("triton_gemv" if n <= MAX_TOKENS else "triton_dequant")
    y = spqr_linear(x, layer, layer.bias, backend="triton")
    assert y.shape == (*x.shape[:-1], OUT) and y.dtype == torch.float32
    assert_close_rel(y, expected(x, layer, layer.bias), FAST_TOL, f"{name} {tokens} tokens [{path}]")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("tokens", [1, 2, 7])
def test_gemv_and_dequant_kernels_directly(bias, tokens):
    triton_or_skip()
    layer = random_layer(wbits=3, seed=3)
    b = layer.bias if bias else None
    x = make_x(tokens, seed=4)
    inv = invert_perm(layer.perm)
    assert torch.equal(inv.long()[layer.perm.long()], torch.arange(IN))
    assert_close_rel(triton_gemv(x, layer, b), expected(x, layer, b), 1e-5)
    generic = GemvConfig(32, 32)  # another launch configuration of the generic kernel
    assert_close_rel(triton_gemv(x, layer, b, inv_perm=inv, config=generic), expected(x, layer, b), 1e-5)
    torch.testing.assert_close(triton_dequantize(layer, torch.float32), layer.dequantize(), rtol=0, atol=0)


def test_kernel_layout_through_the_public_launchers():
    """A layer holding the kernel layout: triton_gemv goes to the fast GEMV, triton_dequantize
    un-permutes the fast dequantization; the generic kernel refuses it."""
    triton_or_skip()
    stored, fast = random_layer(wbits=3, seed=3), random_layer(wbits=3, seed=3, kernel=True)
    x = make_x(FAST_MAX_TOKENS, seed=4)
    assert_close_rel(triton_gemv(x, fast, fast.bias), expected(x, stored, stored.bias), FAST_TOL)
    # the fast dequantization computes s (q - z) in its multiply-add form: float32 rounding apart
    assert_close_rel(triton_dequantize(fast, torch.float32), stored.dequantize(), 1e-6)
    with pytest.raises(ValueError, match="stored layout"):
        triton_gemv(x, fast, fast.bias, config=GemvConfig(32, 32))
    with pytest.raises(ValueError, match="kernel layout"):
        fast_gemv(x, stored)


@pytest.mark.parametrize("preset", ["w3", "w4", "gptq3"])
def test_engine_layers(preset):
    triton_or_skip()
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(32, 64, generator=gen)
    w[3, 5] = 12.0
    xs = torch.randn(256, 64, generator=gen)
    cfg = SpQRConfig.from_preset(preset, **({"groupsize": 16} if preset == "gptq3" else {}))
    r = quantize_weight(w, (xs.T @ xs / 256).double(), cfg)
    layer = QuantizedLinear.from_result(r, torch.randn(32, generator=gen))
    assert layer.layout == "kernel"  # as quantized: the fast kernels
    for tokens in (1, 5, 40):
        x = torch.randn(tokens, 64, generator=gen)
        y = spqr_linear(x, layer, layer.bias, backend="triton")
        assert_close_rel(y, expected(x, layer, layer.bias), FAST_TOL, f"{preset} {tokens} tokens")


def test_non_power_of_two_groupsize_uses_the_dequant_kernel():
    triton_or_skip()
    layer = random_layer(wbits=3, groupsize=24, qq_bits=3)
    x = make_x(2)
    assert select_path(x, layer, backend="triton") == "triton_dequant"
    assert_close_rel(
        spqr_linear(x, layer, layer.bias, backend="triton"), expected(x, layer, layer.bias), 1e-5
    )


def test_cpu_and_torch_backend_use_the_reference():
    layer = random_layer(wbits=4)
    x = make_x(3)
    assert select_path(x, layer, backend="torch") == "dequant"
    assert select_path(x.double(), layer, backend="torch") == "dequant"
    assert_close_rel(layer(x), expected(x, layer, layer.bias), 1e-6)
    with pytest.raises(ValueError, match="features"):
        spqr_linear(torch.randn(2, IN + 1), layer)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gradients_in_x_and_bias(backend):
    if backend == "triton":
        triton_or_skip()
    layer = random_layer(wbits=3)
    x = make_x(2).requires_grad_(True)
    y = spqr_linear(x, layer, layer.bias, backend=backend)
    g = torch.randn_like(y)
    y.backward(g)
    w = layer.dequantize()
    assert_close_rel(x.grad, g @ w, 1e-5)
    assert_close_rel(layer.bias.grad, g.sum(0), 1e-6)


# ------------------------------------------------------------------ float16 and bfloat16 activations
FP16_LAYERS = {"3bit": dict(wbits=3)}  # (fp16 first-level statistics: the float32 tests)


@pytest.mark.parametrize("name", FP16_LAYERS)
def test_float16_paths_under_the_interpreter(name):
    """fp16 activations through every Triton path (the interpreter computes fp16): the fast GEMV and
    dequantize-then-GEMM on the kernel layout, the generic GEMV and dequantize on the stored one."""
    triton_or_skip()
    stored = random_layer(**FP16_LAYERS[name], seed=4)
    kernel = random_layer(**FP16_LAYERS[name], seed=4, kernel=True)
    bias = stored.bias.half()
    tol = tolerance(torch.float16)
    paths = set()
    for tokens in (3, MAX_TOKENS + 1):  # a GEMV, then dequantize + GEMM, for either layout
        x = make_x(tokens, seed=5).half()
        want = expected(x, stored, bias)
        for layer in (stored, kernel):
            path = select_path(x, layer, backend="triton")
            paths.add((layer.layout, path))
            y = spqr_linear(x, layer, bias, backend="triton")
            assert y.dtype == torch.float16
            assert_close_rel(y, want, tol, f"{name} {layer.layout} {tokens} tokens [{path}]")
    assert paths == {(lay, p) for lay in ("stored", "kernel") for p in ("triton_gemv", "triton_dequant")}
    # The dense weight written in fp16 is the float32 one rounded once.
    assert torch.equal(triton_dequantize(stored, torch.float16), stored.dequantize().half())


@pytest.mark.parametrize("kernel", [False, True])
def test_bfloat16_by_dequantize_comparison(kernel):
    """bf16 activations: the kernels compute in float32 and round the dense weight (dequantize paths)
    or the output (GEMV) to bf16. The interpreter has no bf16 math, so on a CPU a bf16 input takes the
    torch reference, which is compared here with the float64 product at the bf16 tolerance, and the
    Triton dense weight in float32 is compared with the reference weight that bf16 rounds."""
    layer = random_layer(wbits=3, seed=7, kernel=kernel)
    ref = random_layer(wbits=3, seed=7)
    x = make_x(5, seed=8).bfloat16()
    bias = layer.bias.bfloat16()
    assert select_path(x, layer, backend="auto") == "dequant"
    y = spqr_linear(x, layer, bias)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, F.linear(x, ref.dequantize().bfloat16(), bias))
    assert_close_rel(y, expected(x, ref, bias), tolerance(torch.bfloat16))
    if triton_mode("cpu") != "unavailable":  # the interpreter: the Triton dense weight, rounded to bf16
        w = triton_dequantize(layer, torch.float32).bfloat16()
        if kernel:  # the multiply-add form of the fast kernel: float32 rounding apart
            assert_close_rel(w, ref.dequantize(), tolerance(torch.bfloat16))
        else:
            assert torch.equal(w, ref.dequantize().bfloat16())


@gpu
@pytest.mark.parametrize("kernel", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_kernels_on_gpu(kernel, dtype):
    """On a GPU: every Triton path in fp16 and bf16 against the float64 reference."""
    layer = random_layer(wbits=3, seed=9, kernel=kernel).cuda()
    ref = random_layer(wbits=3, seed=9)
    bias = layer.bias.to(dtype)
    for tokens in (1, 3, 7, 64):
        x = make_x(tokens, seed=10).to(dtype)
        y = spqr_linear(x.cuda(), layer, bias, backend="triton")
        assert y.dtype == dtype
        assert_close_rel(y.cpu(), expected(x, ref, bias.cpu()), tolerance(dtype), f"{dtype} {tokens} tokens")
    assert torch.equal(triton_dequantize(layer, dtype).cpu(), ref.dequantize().to(dtype))
