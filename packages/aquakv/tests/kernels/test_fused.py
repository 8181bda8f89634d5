import pytest
import torch

from aquakv.kernels import decode_predict, decode_predict_torch
from aquakv.quantizer import HiggsQuantizer
from papercore.testing import triton_or_skip


@pytest.mark.parametrize("d,n,G", [(2, 16, 32), (2, 256, 64), (1, 4, 16), (4, 256, 32)])
@pytest.mark.parametrize("pred", [False, True])
def test_fused_decode_equals_torch_reference(d, n, G, pred):
    triton_or_skip()
    from aquakv.kernels.fused import decode_predict_triton

    torch.manual_seed(0)
    C = 64
    q = HiggsQuantizer(C, d, n, G)
    rows = q.quantize(torch.randn(2, 7, C))
    args = (torch.randn(2, 7, 2 * C), torch.randn(C, 2 * C) / 8, torch.randn(C)) if pred else (None,) * 3
    ref = decode_predict_torch(rows, q, *args)
    got = decode_predict_triton(rows, q, *args)
    assert (got - ref).abs().max() < 1e-5 * ref.abs().max() * 10


def test_fused_decode_fp16_output_and_dispatch():
    triton_or_skip()
    q = HiggsQuantizer(32, 2, 16)
    rows = q.quantize(torch.randn(5, 32))
    ref = decode_predict_torch(rows, q)
    got = decode_predict(rows, q, backend="triton", out_dtype=torch.float16)
    assert got.dtype == torch.float16 and (got.float() - ref).abs().max() < 2e-3 * ref.abs().max()
    assert torch.equal(decode_predict(rows, q, backend="torch"), ref)
