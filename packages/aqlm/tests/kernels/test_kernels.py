"""Every kernel path of aqlm.kernels equals F.linear(x, dequantize(...), bias), computed in float64.

Triton kernels run on CPU under TRITON_INTERPRET=1 (skipped otherwise).
"""

import pytest
import torch
import torch.nn.functional as F

from aqlm.kernels import aqlm_linear, dequantize, select_path, signed_codes
from aqlm.kernels.cpu_lut import lut_linear
from aqlm.kernels.reference import dequantize_slow
from aqlm.kernels.triton_dequant import triton_dequantize
from aqlm.kernels.triton_gemv import GemvConfig, triton_gemv
from papercore.testing import assert_close_rel, triton_or_skip

OUT, IN = 64, 128


def make(scheme: str, out=OUT, inp=IN, dtype=torch.float32, out_g=1, seed=0):
    """Random codes (stored signed), codebooks and scales for an 'MxBgG' scheme."""
    m, b, g = (int(v) for v in scheme.replace("x", " ").replace("g", " ").split())
    gen = torch.Generator().manual_seed(seed)
    codes = signed_codes(torch.randint(0, 2**b, (out // out_g, inp // g, m), generator=gen), b)
    codebooks = (torch.randn(m, 2**b, out_g, g, generator=gen) / (m * g) ** 0.5).to(dtype)
    scales = (torch.rand(out // out_g, 1, 1, 1, generator=gen) + 0.5).to(dtype)
    return codes, codebooks, scales


def inputs(shape, dtype=torch.float32, bias=True, out=OUT, seed=1):
    """``x`` of ``shape`` (a token count means ``[tokens, IN]``, "3d" ``[2, 3, IN]``) and a bias."""
    shape = (2, 3, IN) if shape == "3d" else (shape, IN) if isinstance(shape, int) else shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen).to(dtype)
    b = torch.randn(out, generator=gen).to(dtype) if bias else None
    return x, b


def expected(x, codes, codebooks, scales, bias):
    """The definition, in float64."""
    w = dequantize(codes, codebooks.double(), scales.double())
    return F.linear(x.double(), w, None if bias is None else bias.double())


def test_dequantize_matches_slow_loop():
    codes, cb, s = make("2x4g4", out=8, inp=16)
    assert torch.equal(dequantize(codes, cb, s), dequantize_slow(codes, cb, s))


# ---------------------------------------------------------------------------------------- CPU paths
@pytest.mark.parametrize("scheme", ["2x8g8", "4x8g8", "1x8g8", "3x6g4"])
@pytest.mark.parametrize("shape", [1, 7, 64, "3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_cpu_paths(scheme, shape, bias):
    layer = make(scheme)
    x, b = inputs(shape, bias=bias)
    y = aqlm_linear(x, *layer, b)
    assert y.shape == (*x.shape[:-1], OUT) and y.dtype == x.dtype
    assert_close_rel(y, expected(x, *layer, b), 1e-5, f"{scheme} {select_path(x, *layer[:2])}")


@pytest.mark.parametrize("scheme", ["2x8g8", "4x8g8"])
def test_cpu_lut_direct(scheme):
    layer = make(scheme, seed=3)
    x, b = inputs(5)
    assert_close_rel(lut_linear(x, *layer, b), expected(x, *layer, b), 1e-5, scheme)
    assert_close_rel(lut_linear(x.double(), *layer, b), expected(x, *layer, b), 1e-12, f"{scheme} float64")


def test_cpu_fallbacks():
    """16-bit codes and out_group_size 2 go through dequantize + matmul."""
    for scheme, out_g in (("1x12g8", 1), ("2x8g8", 2)):
        layer = make(scheme, out_g=out_g)
        x, b = inputs(2)
        assert select_path(x, *layer[:2]) == "dequant"
        assert_close_rel(aqlm_linear(x, *layer, b), expected(x, *layer, b), 1e-5, scheme)


# ------------------------------------------------------------------------------------------ Triton
@pytest.mark.parametrize(
    ("scheme", "path"),
    [("2x8g8", "triton_gemv_lut"), ("1x8g8", "triton_gemv_lut"), ("3x6g4", "triton_gemv_lut"),
     ("2x10g4", "triton_gemv"), ("1x12g8", "triton_gemv")],
)  # fmt: skip
@pytest.mark.parametrize("shape", [1, 2, 4, (2, 2, IN)])
@pytest.mark.parametrize("bias", [True, False])
def test_triton_gemv(scheme, path, shape, bias):
    triton_or_skip()
    layer = make(scheme)
    x, b = inputs(shape, bias=bias)
    assert select_path(x, *layer[:2], backend="triton") == path
    y = aqlm_linear(x, *layer, b, backend="triton")
    assert y.shape == (*x.shape[:-1], OUT)
    assert_close_rel(y, expected(x, *layer, b), 1e-5, f"{scheme} {path}")


@pytest.mark.parametrize("scheme", ["2x8g8", "1x10g8"])
def test_triton_3d_input(scheme):
    """[2, 3, in]: six tokens, the lookup kernel's dequantize + GEMM side and the direct GEMV."""
    triton_or_skip()
    layer = make(scheme)
    x, b = inputs("3d")
    y = aqlm_linear(x, *layer, b, backend="triton")
    assert y.shape == (2, 3, OUT)
    assert_close_rel(y, expected(x, *layer, b), 1e-5, select_path(x, *layer[:2], backend="triton"))


@pytest.mark.parametrize("scheme", ["2x8g8", "1x8g8", "3x6g4"])
@pytest.mark.parametrize("tokens", [1, 2, 3, 4])
@pytest.mark.parametrize("split,codes_per_step", [(1, 32), (3, 16)])
def test_triton_lut_split(scheme, tokens, split, codes_per_step):
    """The lookup kernel with and without the split-K reduction, one or two code vectors per step."""
    triton_or_skip()
    layer = make(scheme, inp=256)
    x, b = inputs((tokens, 256))
    cfg = GemvConfig(32, codes_per_step, num_warps=1, split=split)
    y = triton_gemv(x, *layer, b, kernel="lut", config=cfg)
    assert_close_rel(y, expected(x, *layer, b), 1e-5, f"{scheme} split={split}")
    if tokens == 1 and split == 1:
        with pytest.raises(ValueError, match="lookup kernel takes at most 4 tokens"):
            triton_gemv(torch.randn(5, 256), *layer, kernel="lut")


@pytest.mark.parametrize("scheme", ["2x8g8", "3x6g4", "1x16g8"])
@pytest.mark.parametrize("tokens", [1, 7])
def test_triton_direct_kernel(scheme, tokens):
    """The generic decode-from-codebooks kernel, also for layouts that normally take the LUT."""
    triton_or_skip()
    inp = 32 if scheme == "1x16g8" else IN
    layer = make(scheme, out=16, inp=inp)
    x, b = inputs((tokens, inp), out=16)
    y = triton_gemv(x, *layer, b, kernel="direct", config=GemvConfig(16, 2, split=2))
    assert_close_rel(y, expected(x, *layer, b), 1e-5, scheme)


def test_triton_1x16_specialised():
    """The 1x16g8 path on a tiny layer (a 2^16-entry codebook is slow in the interpreter)."""
    triton_or_skip()
    layer = make("1x16g8", out=16, inp=32)
    x, b = inputs((1, 32), out=16)
    assert select_path(x, *layer[:2], backend="triton") == "triton_gemv_1x16"
    assert_close_rel(aqlm_linear(x, *layer, b, backend="triton"), expected(x, *layer, b), 1e-5)


@pytest.mark.parametrize("scheme", ["2x8g8", "3x6g4", "1x12g8"])
def test_triton_dequant(scheme):
    triton_or_skip()
    layer = make(scheme)
    assert_close_rel(triton_dequantize(*layer), dequantize(*layer), 1e-6, scheme)
    x, b = inputs(64)
    assert select_path(x, *layer[:2], backend="triton") == "triton_dequant"
    assert_close_rel(aqlm_linear(x, *layer, b, backend="triton"), expected(x, *layer, b), 1e-5, scheme)


@pytest.mark.parametrize("scheme", ["2x8g8", "1x8g8", "2x10g4"])
@pytest.mark.parametrize("tokens", [1, 7])
def test_triton_fp16(scheme, tokens):
    triton_or_skip()
    layer = make(scheme, dtype=torch.float16)
    x, b = inputs((tokens, IN), dtype=torch.float16)
    y = aqlm_linear(x, *layer, b, backend="triton")
    assert y.dtype == torch.float16
    assert_close_rel(y, expected(x, *layer, b), 2e-3, scheme)


def test_triton_out_group_fallback():
    triton_or_skip()
    layer = make("2x8g8", out_g=2)
    x, b = inputs(1)
    assert select_path(x, *layer[:2], backend="triton") == "dequant"
    assert_close_rel(aqlm_linear(x, *layer, b, backend="triton"), expected(x, *layer, b), 1e-5)


# ---------------------------------------------------------------------------------- dispatch, errors
def test_select_path_cpu():
    x1, x64, x65 = torch.randn(1, IN), torch.randn(64, IN), torch.randn(65, IN)
    lut_layer, big_layer = make("2x8g8"), make("1x12g8")
    assert select_path(x1, *lut_layer[:2]) == "cpu_lut"
    assert select_path(x64, *lut_layer[:2]) == "cpu_lut"
    assert select_path(x65, *lut_layer[:2]) == "dequant"  # tables grow with the tokens
    assert select_path(x1, *big_layer[:2]) == "dequant"
    assert select_path(x1, *lut_layer[:2], backend="torch") == "cpu_lut"
    with pytest.raises(ValueError, match="backend"):
        select_path(x1, *lut_layer[:2], backend="cuda")


def test_select_path_triton():
    triton_or_skip()
    x4, x5, x8, x9 = (torch.randn(t, IN) for t in (4, 5, 8, 9))
    lut_layer, direct_layer = make("2x8g8"), make("2x10g4")
    assert select_path(x4, *lut_layer[:2], backend="triton") == "triton_gemv_lut"
    assert select_path(x5, *lut_layer[:2], backend="triton") == "triton_dequant"  # a lookup per token
    assert select_path(x8, *direct_layer[:2], backend="triton") == "triton_gemv"
    assert select_path(x9, *direct_layer[:2], backend="triton") == "triton_dequant"
    assert select_path(x8, *make("1x16g8", out=16, inp=16)[:2], backend="triton") == "triton_gemv_1x16"
    assert select_path(x8.double(), *make("2x8g8")[:2], backend="triton") == "cpu_lut"  # no float64 kernels


def test_bad_inputs():
    codes, cb, s = make("2x8g8")
    with pytest.raises(ValueError, match="in-features mismatch"):
        aqlm_linear(torch.randn(3, IN + 8), codes, cb, s)
    with pytest.raises(ValueError, match="codebooks per group"):
        aqlm_linear(torch.randn(3, IN), codes[..., :1], cb, s)
    with pytest.raises(ValueError, match="scales"):
        aqlm_linear(torch.randn(3, IN), codes, cb, s[:3])
    with pytest.raises(ValueError, match="bias"):
        aqlm_linear(torch.randn(3, IN), codes, cb, s, torch.zeros(OUT + 1))


# ---------------------------------------------------------------------------------------- backward
@pytest.mark.parametrize("scheme", ["2x4g4", "1x10g4"])  # the CPU LUT path and dequantize + matmul
def test_gradcheck(scheme):
    codes, cb, s = make(scheme, out=6, inp=8, dtype=torch.float64)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    cb.requires_grad_(True)
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, cb, s, b: aqlm_linear(x, codes, cb, s, b), (x, cb, s, bias))


def test_backward_matches_reference_autograd():
    codes, cb, s = make("2x8g8")
    x, b = inputs(7)
    leaves = [t.clone().requires_grad_(True) for t in (x, cb, s, b)]
    refs = [t.clone().requires_grad_(True) for t in (x, cb, s, b)]
    aqlm_linear(leaves[0], codes, *leaves[1:]).square().sum().backward()
    F.linear(refs[0], dequantize(codes, refs[1], refs[2]), refs[3]).square().sum().backward()
    for name, got, want in zip(("x", "codebooks", "scales", "bias"), leaves, refs):
        assert_close_rel(got.grad, want.grad, 1e-5, name)


def test_inference_is_a_plain_call():
    codes, cb, s = make("2x8g8")
    assert aqlm_linear(torch.randn(2, IN), codes, cb, s).grad_fn is None
    cb.requires_grad_(True)
    with torch.no_grad():
        assert aqlm_linear(torch.randn(2, IN), codes, cb, s).grad_fn is None
    assert aqlm_linear(torch.randn(2, IN), codes, cb, s).grad_fn is not None


def test_codes_stored_signed_below_8_bits():
    """6-bit codes stored the upstream way (values >= 32 minus 64) decode like the reference."""
    codes, cb, s = make("3x6g4")
    stored = torch.where(codes >= 32, codes - 64, codes).to(torch.int8)
    x, b = inputs(2)
    want = expected(x, stored, cb, s, b)
    assert torch.equal(dequantize(stored, cb, s), dequantize(codes, cb, s))
    assert_close_rel(aqlm_linear(x, stored, cb, s, b), want, 1e-5, "cpu_lut")
    triton_or_skip()
    assert_close_rel(aqlm_linear(x, stored, cb, s, b, backend="triton"), want, 1e-5, "triton")
