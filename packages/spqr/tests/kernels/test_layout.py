"""The fast kernel layout (spqr.kernels.layout) and the fast GEMV kernel that reads it."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from papercore.testing import assert_close_rel, triton_or_skip
from spqr.kernels.layout import build_layout, fast_supported, layout_of
from spqr.kernels.triton_ops import GemvConfig, fast_gemv, triton_gemv

_spec = importlib.util.spec_from_file_location(
    "spqr_kernel_tests", Path(__file__).with_name("test_kernels.py")
)
_mod = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("spqr_kernel_tests", _mod)
_spec.loader.exec_module(_mod)
random_layer, IN = _mod.random_layer, _mod.IN


def expected(x, layer, bias):
    return F.linear(x.double(), layer.dequantize().double(), None if bias is None else bias.double())


def test_fast_supported_configurations():
    assert fast_supported(random_layer(wbits=3))
    assert fast_supported(random_layer(wbits=4, qq_bits=16, groupsize=32))
    assert not fast_supported(random_layer(wbits=2, groupsize=8, qq_bits=2))  # groups below 16 columns
    assert not fast_supported(random_layer(wbits=4, qq_bits=4, sym=True))
    with pytest.raises(ValueError, match="fast kernel layout"):
        build_layout(random_layer(wbits=4, qq_bits=4, sym=True))


@pytest.mark.parametrize("wbits", [2, 3, 4])
def test_layout_planes_hold_the_codes(wbits):
    """Decoding the planes by hand gives back the stored codes (3-bit: 48 columns pad the high plane)."""
    from papercore.kernels.packing import unpack_bits

    layer = random_layer(wbits=wbits, groupsize=16, qq_bits=3 if wbits > 2 else 2)
    lay = build_layout(layer)
    codes = unpack_bits(layer.codes, wbits, IN).long()
    k = torch.arange(IN)
    lo = (lay.lo.long()[:, k // 16] >> (2 * (k % 16))) & 3
    if wbits == 3:
        hi = (lay.hi.long()[:, k // 32] >> (k % 32)) & 1
    elif wbits == 4:
        hi = (lay.hi.long()[:, k // 16] >> (2 * (k % 16))) & 3
    else:
        hi = torch.zeros_like(lo)
    assert torch.equal(lo | (hi << 2), codes)


@pytest.mark.parametrize(
    "kw",
    [
        dict(wbits=3),
        dict(wbits=4),
        dict(wbits=2, groupsize=16, qq_bits=2),
        dict(wbits=3, qq_bits=16, groupsize=32),
    ],
)
@pytest.mark.parametrize("tokens", [1, 3, 16])
def test_fast_kernel_equals_generic_kernel_and_reference(kw, tokens):
    triton_or_skip()
    layer = random_layer(**kw)
    x = torch.randn(tokens, IN, generator=torch.Generator().manual_seed(5))
    y = fast_gemv(x, layer, layer.bias)
    assert_close_rel(y, expected(x, layer, layer.bias), 1e-5, f"{kw} fast")
    generic = triton_gemv(x, layer, layer.bias, config=GemvConfig(32, 32))
    assert_close_rel(y, generic.double(), 1e-5, f"{kw} fast vs generic")


def test_odd_width_three_bit_pads_the_high_plane():
    triton_or_skip()
    torch.manual_seed(0)
    from spqr.config import SpQRConfig
    from spqr.engine import quantize_weight
    from spqr.quantized_linear import QuantizedLinear

    w = torch.randn(32, 48)
    xs = torch.randn(128, 48)
    layer = QuantizedLinear.from_result(quantize_weight(w, (xs.T @ xs / 128).double(), SpQRConfig()))
    x = torch.randn(1, 48)
    assert_close_rel(fast_gemv(x, layer), expected(x, layer, None), 1e-5)


def test_layout_is_rebuilt_after_load_state_dict():
    triton_or_skip()
    a, b = random_layer(wbits=3, seed=0, outliers=0.0), random_layer(wbits=3, seed=1, outliers=0.0)
    first = layout_of(a)
    assert layout_of(a) is first  # cached
    a.load_state_dict(b.state_dict())  # in-place copy: same storage, new values
    x = torch.randn(1, IN)
    assert_close_rel(fast_gemv(x, a, a.bias), expected(x, b, b.bias), 1e-5)
