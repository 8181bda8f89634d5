"""The kernel layout (spqr.kernels.layout), the conversion between it and the stored format, and the
fast kernels that read it (under TRITON_INTERPRET=1 on a CPU)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from papercore.kernels.packing import unpack_bits
from papercore.testing import assert_close_rel, triton_or_skip
from spqr.kernels.layout import FIELDS, code_slot, fast_supported, geometry, to_kernel, xmul
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
    sym = random_layer(wbits=4, qq_bits=4, sym=True)
    assert not fast_supported(sym)
    with pytest.raises(ValueError, match="fast kernel layout"):
        geometry(sym)
    assert sym.to_kernel_layout_().layout == "stored"  # no kernel layout: it keeps the stored format


@pytest.mark.parametrize("wbits", [2, 3, 4])
def test_layout_planes_hold_the_codes(wbits):
    """Word t of a thread's planes holds the codes of slab columns 4 j + t as one bitstream (code j
    at bits [wbits j, wbits j + wbits) of the planes' concatenation), padded with zeros."""
    layer = random_layer(wbits=wbits, groupsize=16, qq_bits=3 if wbits > 2 else 2)
    geo = geometry(layer)
    codes = unpack_bits(layer.codes, wbits, IN).long()
    f, ck = FIELDS[wbits], geo.slab
    planes = to_kernel(layer)["planes"].long() & 0xFFFFFFFF  # [NB, P, O, 4]
    got = torch.zeros(layer.out_features, geo.num_slabs * ck, dtype=torch.long)
    for j in range(f):
        p, sh = divmod(wbits * j, 32)
        word = planes[:, p]
        if sh + wbits > 32:  # the code straddles words p and p + 1
            word = word | (planes[:, p + 1] << 32)
        code = (word >> sh) & ((1 << wbits) - 1)  # [NB, O, 4]
        got.view(-1, geo.num_slabs, f, 4)[:, :, j, :] = code.permute(1, 0, 2)
    assert torch.equal(got[:, :IN], codes) and not got[:, IN:].any()
    assert xmul(wbits, torch.device("cpu")).shape == (ck,) and all(
        0 <= code_slot(j, wbits) < 4 for j in range(f)
    )


LAYOUTS = {
    "3bit": dict(wbits=3),  # one slab of 128 columns, 96 used: a padded slab
    "4bit": dict(wbits=4),
    "2bit": dict(wbits=2, qq_bits=2),
    "3bit-fp16-stats": dict(wbits=3, qq_bits=16, groupsize=32),
    "4bit-groups-of-two-slabs": dict(wbits=4, qq_bits=4, groupsize=64, out=32, inp=192),
    "4bit-fp16-groups-of-four-slabs": dict(wbits=4, qq_bits=16, groupsize=128, out=32, inp=256),
    "no-outliers": dict(wbits=3, outliers=0.0),
}


def _layer(kw, seed=0):
    kw = dict(kw)
    if "inp" in kw:
        return _mod.random_layer_sized(**kw, seed=seed)
    return random_layer(**kw, seed=seed)


@pytest.mark.parametrize("name", LAYOUTS)
def test_conversion_round_trips_bit_exactly(name):
    """stored -> kernel layout -> stored gives the same tensors; the kernel layout replaces the stored
    buffers and dequantizes to the same weight, bit for bit."""
    layer = _layer(LAYOUTS[name])
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    w = layer.dequantize()
    layer.to_kernel_layout_()
    assert layer.layout == "kernel" and not hasattr(layer, "codes") and hasattr(layer, "planes")
    assert torch.equal(layer.dequantize(), w)
    for stat in ("scale", "zero"):
        assert torch.equal(layer.statistic(stat), _layer(LAYOUTS[name]).statistic(stat))
    saved = layer.state_dict()  # the stored format, converted back
    assert list(saved) == list(before)
    for k in before:
        assert saved[k].dtype == before[k].dtype and torch.equal(saved[k], before[k]), k
    layer.to_stored_layout_()
    assert layer.layout == "stored" and torch.equal(layer.dequantize(), w)
    assert all(torch.equal(layer.state_dict()[k], before[k]) for k in before)


def test_load_state_dict_into_a_kernel_layout_layer_converts_again():
    a = random_layer(wbits=3, seed=0, outliers=0.0, kernel=True)
    b = random_layer(wbits=3, seed=1, outliers=0.0)
    a.load_state_dict(b.state_dict())
    assert a.layout == "kernel" and torch.equal(a.dequantize(), b.dequantize())


@pytest.mark.parametrize(
    "kw",
    [
        dict(wbits=3),
        dict(wbits=4),
        dict(wbits=2, groupsize=16, qq_bits=2),
        dict(wbits=3, qq_bits=16, groupsize=32),
    ],
)
@pytest.mark.parametrize("tokens", [1, 3])  # 3: four token slots, the last one padding
@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow: a padding token read past x
def test_fast_kernel_equals_generic_kernel_and_reference(kw, tokens):
    triton_or_skip()
    stored, layer = random_layer(**kw), random_layer(**kw, kernel=True)
    # x is followed in memory by huge values: a read past its last token would overflow
    buf = torch.full((tokens + 1, IN), 3e38)
    buf[:tokens] = torch.randn(tokens, IN, generator=torch.Generator().manual_seed(5))
    x = buf[:tokens]
    y = fast_gemv(x, layer, layer.bias)
    assert_close_rel(y, expected(x, stored, stored.bias), FAST_TOL, f"{kw} fast")
    generic = triton_gemv(x, stored, stored.bias, config=GemvConfig(32, 32))
    assert_close_rel(y, generic.double(), FAST_TOL, f"{kw} fast vs generic")
    many = torch.randn(7, IN, generator=torch.Generator().manual_seed(6))
    assert_close_rel(fast_linear_dequant(many, layer, layer.bias), expected(many, stored, stored.bias), 1e-5)
    with pytest.raises(ValueError, match="at most 4 tokens"):
        fast_gemv(many, layer)


@pytest.mark.parametrize("name", ["4bit-groups-of-two-slabs", "4bit-fp16-groups-of-four-slabs"])
def test_fast_kernel_with_groups_wider_than_a_slab(name):
    """Statistics kept once per group, read by every slab of it (stat slab b // SPG)."""
    triton_or_skip()
    layer = _layer(LAYOUTS[name], seed=2).to_kernel_layout_()
    assert geometry(layer).slabs_per_stat > 1
    stored = _layer(LAYOUTS[name], seed=2)
    x = torch.randn(2, layer.in_features, generator=torch.Generator().manual_seed(3))
    assert_close_rel(fast_gemv(x, layer, layer.bias), expected(x, stored, stored.bias), FAST_TOL)
    many = torch.randn(5, layer.in_features, generator=torch.Generator().manual_seed(4))
    assert_close_rel(fast_linear_dequant(many, layer, layer.bias), expected(many, stored, stored.bias), 1e-5)


def test_fast_kernel_split_over_many_slabs():
    """Several slabs per row, split over programs (the last one sums the partials), partial last slab."""
    triton_or_skip()
    for wbits in (3, 4):
        kw = dict(wbits=wbits, out=48, inp=672, seed=7, full_row=False)  # (a full row: slow to interpret)
        stored, layer = _mod.random_layer_sized(**kw), _mod.random_layer_sized(**kw).to_kernel_layout_()
        x = torch.randn(2, 672, generator=torch.Generator().manual_seed(8))
        assert_close_rel(
            fast_gemv(x, layer, layer.bias), expected(x, stored, stored.bias), FAST_TOL, str(wbits)
        )


def test_odd_width_three_bit_pads_the_last_slab():
    triton_or_skip()
    torch.manual_seed(0)
    from spqr.config import SpQRConfig
    from spqr.engine import quantize_weight
    from spqr.quantized_linear import QuantizedLinear

    w = torch.randn(32, 48)
    xs = torch.randn(128, 48)
    r = quantize_weight(w, (xs.T @ xs / 128).double(), SpQRConfig())
    layer = QuantizedLinear.from_result(r)
    x = torch.randn(1, 48)
    assert_close_rel(fast_gemv(x, layer), F.linear(x.double(), r.weight.double()), FAST_TOL)
