"""Every kernel path of spqr.kernels equals F.linear(x, layer.dequantize(), bias), computed in float64.

Triton kernels run on CPU under TRITON_INTERPRET=1 (skipped otherwise), in float32.
"""

import pytest
import torch
import torch.nn.functional as F

from papercore.kernels.packing import pack_bits
from papercore.testing import assert_close_rel, triton_or_skip
from spqr.config import SpQRConfig
from spqr.engine import quantize_weight
from spqr.kernels import select_path, spqr_linear
from spqr.kernels.layout import fast_supported
from spqr.kernels.triton_ops import (
    FAST_MAX_TOKENS,
    MAX_TOKENS,
    GemvConfig,
    invert_perm,
    triton_dequantize,
    triton_gemv,
)
from spqr.quantized_linear import QuantizedLinear, build_csr

OUT, IN = 48, 96  # 48 rows: a partial row block; 96 columns of 3 bits: codes straddle words
# The fast kernel factors the statistics out of its inner loop: its float32 sums carry terms up to
# 2^9 |x| that cancel, which costs about 4 bits of float32 (see spqr.kernels._fast).
FAST_TOL = 5e-5


def random_layer(wbits=3, groupsize=16, qq_bits=3, outliers=0.03, sym=False, bias=True, seed=0):
    """A QuantizedLinear with random codes, statistics, permutation and outliers (format-level tests)."""
    return random_layer_sized(wbits, groupsize, qq_bits, outliers, sym, bias, seed, OUT, IN)


def random_layer_sized(wbits=3, groupsize=16, qq_bits=3, outliers=0.03, sym=False, bias=True, seed=0, out=OUT,
                       inp=IN):  # fmt: skip
    OUT, IN = out, inp  # noqa: N806
    gen = torch.Generator().manual_seed(seed)
    groups = IN // groupsize
    mask = torch.rand(OUT, IN, generator=gen) < outliers
    mask[5] = True  # a row full of outliers
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
    triton_or_skip()
    layer = random_layer(**LAYERS[name])
    x = make_x(tokens)
    path = select_path(x, layer, backend="triton")
    n = x.numel() // IN
    gemv_limit = FAST_MAX_TOKENS if fast_supported(layer) else MAX_TOKENS
    assert path == ("triton_gemv" if n <= gemv_limit else "triton_dequant")
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
    assert_close_rel(triton_gemv(x, layer, b), expected(x, layer, b), FAST_TOL)
    generic = GemvConfig(32, 32)  # a config forces the generic kernel on the stored bitstreams
    assert_close_rel(triton_gemv(x, layer, b, inv_perm=inv, config=generic), expected(x, layer, b), 1e-5)
    torch.testing.assert_close(triton_dequantize(layer, torch.float32), layer.dequantize(), rtol=0, atol=0)


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
