"""The fast kernel layout (spqr.kernels.layout) and the fast GEMV kernel that reads it."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from papercore.testing import assert_close_rel, triton_or_skip
from spqr.kernels.layout import FIELDS, build_layout, code_slot, fast_supported, layout_of
from spqr.kernels.triton_ops import GemvConfig, fast_gemv, fast_linear_dequant, triton_gemv

_spec = importlib.util.spec_from_file_location(
    "spqr_kernel_tests", Path(__file__).with_name("test_kernels.py")
)
_mod = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("spqr_kernel_tests", _mod)
_spec.loader.exec_module(_mod)
random_layer, IN, FAST_TOL = _mod.random_layer, _mod.IN, _mod.FAST_TOL


def expected(x, layer, bias):
    return F.linear(x.double(), layer.dequantize().double(), None if bias is None else bias.double())


def test_fast_supported_configurations():
    assert fast_supported(random_layer(wbits=3))
    assert fast_supported(random_layer(wbits=4, qq_bits=16, groupsize=32))
    assert not fast_supported(random_layer(wbits=2, groupsize=8, qq_bits=2))  # groups below 16 columns
    assert not fast_supported(
        random_layer(wbits=3, groupsize=48, qq_bits=3)
    )  # neither divides the 128-column slab
    assert not fast_supported(random_layer(wbits=4, qq_bits=4, sym=True))
    with pytest.raises(ValueError, match="fast kernel layout"):
        build_layout(random_layer(wbits=4, qq_bits=4, sym=True))


@pytest.mark.parametrize("wbits", [2, 3, 4])
def test_layout_planes_hold_the_codes(wbits):
    """Word t of a thread's planes holds the codes of slab columns 4 j + t as one bitstream (code j
    at bits [wbits j, wbits j + wbits) of the planes' concatenation), padded with zeros."""
    from papercore.kernels.packing import unpack_bits

    layer = random_layer(wbits=wbits, groupsize=16, qq_bits=3 if wbits > 2 else 2)
    lay = build_layout(layer)
    codes = unpack_bits(layer.codes, wbits, IN).long()
    f, ck = FIELDS[wbits], lay.slab
    planes = lay.planes.long() & 0xFFFFFFFF  # [NB, P, O, 4]
    got = torch.zeros(layer.out_features, lay.num_slabs * ck, dtype=torch.long)
    for j in range(f):
        p, sh = divmod(wbits * j, 32)
        word = planes[:, p]
        if sh + wbits > 32:  # the code straddles words p and p + 1
            word = word | (planes[:, p + 1] << 32)
        code = (word >> sh) & ((1 << wbits) - 1)  # [NB, O, 4]
        got.view(-1, lay.num_slabs, f, 4)[:, :, j, :] = code.permute(1, 0, 2)
    assert torch.equal(got[:, :IN], codes) and not got[:, IN:].any()
    assert lay.xmul.shape == (ck,) and all(0 <= code_slot(j, wbits) < 4 for j in range(f))


@pytest.mark.parametrize(
    "kw",
    [
        dict(wbits=3),
        dict(wbits=4),
        dict(wbits=2, groupsize=16, qq_bits=2),
        dict(wbits=3, qq_bits=16, groupsize=32),
    ],
)
@pytest.mark.parametrize("tokens", [1, 3, 4])
def test_fast_kernel_equals_generic_kernel_and_reference(kw, tokens):
    triton_or_skip()
    layer = random_layer(**kw)
    x = torch.randn(tokens, IN, generator=torch.Generator().manual_seed(5))
    y = fast_gemv(x, layer, layer.bias)
    assert_close_rel(y, expected(x, layer, layer.bias), FAST_TOL, f"{kw} fast")
    generic = triton_gemv(x, layer, layer.bias, config=GemvConfig(32, 32))
    assert_close_rel(y, generic.double(), FAST_TOL, f"{kw} fast vs generic")
    many = torch.randn(7, IN, generator=torch.Generator().manual_seed(6))
    assert_close_rel(fast_linear_dequant(many, layer, layer.bias), expected(many, layer, layer.bias), 1e-5)
    with pytest.raises(ValueError, match="at most 4 tokens"):
        fast_gemv(many, layer)


def test_fast_kernel_split_over_many_slabs():
    """Several slabs per row, split over programs (the last one sums the partials), partial last slab."""
    triton_or_skip()
    for wbits in (3, 4):
        layer = _mod.random_layer_sized(wbits=wbits, out=48, inp=672, seed=7)
        x = torch.randn(2, 672, generator=torch.Generator().manual_seed(8))
        assert_close_rel(
            fast_gemv(x, layer, layer.bias), expected(x, layer, layer.bias), FAST_TOL, str(wbits)
        )


def test_odd_width_three_bit_pads_the_last_slab():
    triton_or_skip()
    torch.manual_seed(0)
    from spqr.config import SpQRConfig
    from spqr.engine import quantize_weight
    from spqr.quantized_linear import QuantizedLinear

    w = torch.randn(32, 48)
    xs = torch.randn(128, 48)
    layer = QuantizedLinear.from_result(quantize_weight(w, (xs.T @ xs / 128).double(), SpQRConfig()))
    x = torch.randn(1, 48)
    assert_close_rel(fast_gemv(x, layer), expected(x, layer, None), FAST_TOL)


def test_layout_is_rebuilt_after_load_state_dict():
    triton_or_skip()
    a, b = random_layer(wbits=3, seed=0, outliers=0.0), random_layer(wbits=3, seed=1, outliers=0.0)
    first = layout_of(a)
    assert layout_of(a) is first  # cached
    a.load_state_dict(b.state_dict())  # in-place copy: same storage, new values
    x = torch.randn(1, IN)
    assert_close_rel(fast_gemv(x, a, a.bias), expected(x, b, b.bias), FAST_TOL)
