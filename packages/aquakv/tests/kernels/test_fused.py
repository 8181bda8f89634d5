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


@pytest.mark.parametrize("batch", [1, 2])
def test_fused_two_part_predictor_rope_and_into_equal_the_reference(batch):
    """The cache's call: predictor input in two parts, RoPE on the copy written into a strided
    slice of a larger [B, T, C] tensor; the rest of that tensor is left alone."""
    triton_or_skip()
    from aquakv.kernels.fused import decode_predict_triton

    torch.manual_seed(1)
    C, T, hd = 64, 9, 16
    q = HiggsQuantizer(C, 2, 16, 32)
    rows = q.quantize(torch.randn(batch, T, C))
    x, x2 = torch.randn(batch, T, C), torch.randn(batch, T, C)
    w, b = torch.randn(C, 2 * C) / 8, torch.randn(C)
    ang = torch.rand(T, hd // 2) * 3
    cos, sin = torch.cat([ang.cos()] * 2, -1) * 1.1, torch.cat([ang.sin()] * 2, -1) * 1.1
    full_ref, full_got = torch.full((batch, T + 5, C), 7.0), torch.full((batch, T + 5, C), 7.0)
    ref = decode_predict_torch(rows, q, x, w, b, x2=x2, rope=(cos, sin), into=full_ref[:, 2 : 2 + T])
    got = decode_predict_triton(rows, q, x, w, b, x2=x2, rope=(cos, sin), into=full_got[:, 2 : 2 + T])
    tol = 1e-5 * ref.abs().max() * 10
    assert (got - ref).abs().max() < tol
    assert (full_got - full_ref).abs().max() < tol
    assert (full_got[:, :2] == 7).all() and (full_got[:, 2 + T :] == 7).all()
    # the rotated copy differs from the rows (RoPE was applied) and the unrotated copy equals them
    assert not torch.allclose(full_got[:, 2 : 2 + T], got)
    plain = torch.zeros(batch, T, C)
    decode_predict_triton(rows, q, x, w, b, x2=x2, into=plain)
    assert torch.allclose(plain, got)


@pytest.mark.parametrize("G,pred", [(256, False), (512, True)])
def test_fused_kronecker_hadamard_equals_reference(G, pred):
    """Groups of >= 256 channels take the Kronecker form H_G = H_HA (x) H_HB in the unpack kernel."""
    triton_or_skip()
    from aquakv.kernels.fused import decode_predict_triton, kronecker_factors

    assert kronecker_factors(G) == ((16, 16) if G == 256 else (16, 32))
    torch.manual_seed(2)
    q = HiggsQuantizer(G, 2, 16, G)
    rows = q.quantize(torch.randn(3, G))
    args = (torch.randn(3, G), torch.randn(G, G) / 16, torch.randn(G)) if pred else (None,) * 3
    ref = decode_predict_torch(rows, q, *args)
    got = decode_predict_triton(rows, q, *args)
    assert (got - ref).abs().max() < 1e-5 * ref.abs().max() * 10


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_per_row_rope_tables_rotate_each_row_with_its_own_positions(backend):
    """Left-padded batches pass cos/sin of [B, T, hd] (each row's positions): each row of the copy
    written into ``into`` is its reconstruction rotated with its own table."""
    if backend == "triton":
        triton_or_skip()
    from aquakv.rope import rotate

    torch.manual_seed(3)
    B, C, T, hd = 2, 64, 5, 16
    q = HiggsQuantizer(C, 2, 16, 32)
    rows = q.quantize(torch.randn(B, T, C))
    ang = torch.rand(B, T, hd // 2) * 3
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    into = torch.zeros(B, T, C)
    out = decode_predict(rows, q, rope=(cos, sin), into=into, backend=backend)
    for i in range(B):  # heads [T, H, hd] rotated by row i's [T, hd] table
        want = rotate(out[i].view(T, C // hd, hd), cos[i][:, None], sin[i][:, None]).reshape(T, C)
        assert (into[i] - want).abs().max() < 1e-5 * want.abs().max()
    assert not torch.allclose(
        into[0], rotate(out[0].view(T, -1, hd), cos[1][:, None], sin[1][:, None]).reshape(T, C)
    )
