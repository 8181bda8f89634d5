import pytest
import torch

from aqlm import QuantizedLinear
from aqlm.kernels.reference import dequantize, dequantize_slow, signed_codes, unsigned_codes


@pytest.mark.parametrize("nbits", [1, 4, 7, 8, 12, 16])
def test_signed_code_storage_round_trips(nbits):
    codes = torch.randint(0, 2**nbits, (5, 7, 3))
    codes[0, 0, 0], codes[0, 0, 1] = 0, 2**nbits - 1
    stored = signed_codes(codes, nbits)
    assert stored.dtype == (torch.int8 if nbits <= 8 else torch.int16)
    assert torch.equal(unsigned_codes(stored, nbits), codes)
    if nbits in (8, 16):  # values >= 2^(B-1) are stored minus 2^B (the upstream convention)
        assert stored[0, 0, 1].item() == -1
    with pytest.raises(ValueError):
        signed_codes(torch.tensor([2**nbits]), nbits)


@pytest.mark.parametrize("m,b,og,ig", [(1, 4, 1, 4), (2, 8, 1, 8), (3, 5, 2, 4)])
def test_dequantize_equals_slow_reference(m, b, og, ig):
    gen = torch.Generator().manual_seed(0)
    codes = signed_codes(torch.randint(0, 2**b, (6, 5, m), generator=gen), b)
    codebooks = torch.randn(m, 2**b, og, ig, generator=gen)
    scales = torch.rand(6, 1, 1, 1, generator=gen)
    assert torch.allclose(
        dequantize(codes, codebooks, scales), dequantize_slow(codes, codebooks, scales), atol=1e-6
    )


def test_upstream_constructor_names_and_shapes():
    layer = QuantizedLinear(
        64, 32, in_group_size=8, out_group_size=1, num_codebooks=2, nbits_per_codebook=8, bias=True
    )
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in layer.state_dict().items()}
    assert shapes == {
        "codebooks": ((2, 256, 1, 8), torch.float32),
        "codes": ((32, 8, 2), torch.int8),
        "scales": ((32, 1, 1, 1), torch.float32),
        "bias": ((32,), torch.float32),
    }
    assert not layer.codes.requires_grad
    assert QuantizedLinear(64, 32, 8, 1, 1, 16, bias=False).codes.dtype == torch.int16
    with pytest.raises(ValueError, match="does not divide"):
        QuantizedLinear(60, 32, 8, 1, 1, 8)


def test_forward_equals_dense_linear_and_backward():
    gen = torch.Generator().manual_seed(1)
    layer = QuantizedLinear.from_parts(
        torch.randint(0, 16, (12, 4, 2), generator=gen),
        torch.randn(2, 16, 1, 8),
        torch.rand(12, 1, 1, 1),
        torch.randn(12),
    )
    x = torch.randn(3, 5, 32)
    ref = torch.nn.functional.linear(x, layer.dequantize(), layer.bias)
    assert torch.allclose(layer(x), ref, atol=1e-5)
    layer(x).sum().backward()
    assert layer.codebooks.grad is not None and layer.scales.grad is not None
