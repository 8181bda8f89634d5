"""The fused quantize kernel (aquakv.kernels.quantize) against HiggsQuantizer.quantize, under TRITON_INTERPRET=1."""

import pytest
import torch

from aquakv.kernels import quantize_rows
from aquakv.kernels.quantize import quantize_supported, quantize_triton
from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer
from papercore.testing import triton_or_skip


@pytest.mark.parametrize(
    "d,n,group,channels,scale_dtype",
    [
        (2, 16, 64, 128, "float16"),
        (1, 4, 32, 64, "float32"),
        (2, 256, 64, 64, "float16"),
        (4, 256, 32, 64, "float16"),
    ],
)
def test_fused_quantize_equals_reference(d, n, group, channels, scale_dtype):
    triton_or_skip()
    q = HiggsQuantizer(channels, d=d, n=n, group=group, scale_dtype=scale_dtype)
    assert quantize_supported(q)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, channels, generator=gen) * torch.rand(3, 7, 1, generator=gen) * 4
    x[0, 0] = 0.0  # an all-zero row: scale 0, codes of the zero vector
    ref = q.quantize(x)
    got = quantize_triton(q, x)
    assert got.codes.shape == ref.codes.shape and got.codes.dtype == ref.codes.dtype
    assert got.scales.dtype == ref.scales.dtype
    torch.testing.assert_close(got.scales.float(), ref.scales.float(), rtol=1e-6, atol=0)
    codes_ref, codes_got = q.unpack(ref.codes), q.unpack(got.codes)
    agree = (codes_ref == codes_got).float().mean().item()
    assert agree >= 0.999, f"only {agree:.4%} of codes agree"  # boundary ties may differ by rounding
    err_ref = (q.dequantize(ref) - x).pow(2).sum()
    err_got = (q.dequantize(got) - x).pow(2).sum()
    assert err_got <= err_ref * (1 + 1e-4)


def test_dispatch_falls_back_to_the_reference():
    x = torch.randn(4, 64)
    ident = IdentityQuantizer(64)
    assert torch.equal(quantize_rows(ident, x).codes, ident.quantize(x).codes)
    q = HiggsQuantizer(64, d=2, n=16)
    assert torch.equal(quantize_rows(q, x, backend="torch").codes, q.quantize(x).codes)
    assert not quantize_supported(HiggsQuantizer(64, d=2, n=16, group=16))  # tiles need 32 channels
