import pytest
import torch

from spqr.config import SpQRConfig
from spqr.engine import quantize_weight
from spqr.quantized_linear import QuantizedLinear, build_csr, csr_to_dense


def _layer(out=32, inp=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    w[3, 5] = 12.0  # a planted outlier
    x = torch.randn(256, inp, generator=g) * torch.linspace(0.2, 2, inp)
    return w, (x.T @ x / x.shape[0]).double()


def test_csr_round_trip():
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(7, 40, generator=g) < 0.1
    mask[2] = False  # an empty row
    values = torch.randn(int(mask.sum()), generator=g).half()
    offsets, cols, vals = build_csr(mask, values)
    assert offsets.dtype == torch.int32 and cols.dtype == torch.int16 and vals.dtype == torch.float16
    assert offsets[0] == 0 and offsets[-1] == mask.sum() and offsets[3] == offsets[2]
    back_mask, dense = csr_to_dense(offsets, cols, vals, (7, 40))
    assert torch.equal(back_mask, mask) and torch.equal(dense[mask], values)


def test_index_width_overflow_is_an_error():
    mask = torch.zeros(2, 40000, dtype=torch.bool)
    mask[1, 39999] = True
    with pytest.raises(ValueError, match="does not fit torch.int16"):
        build_csr(mask, torch.ones(1), torch.int16)
    _, cols, _ = build_csr(mask, torch.ones(1), torch.int32)
    assert cols.tolist() == [39999]


@pytest.mark.parametrize("preset", ["w3", "w4"])
def test_dequantize_is_bit_exact_with_the_engine(preset):
    w, xtx = _layer()
    r = quantize_weight(w, xtx, SpQRConfig.from_preset(preset))
    assert r.outlier_mask.sum() > 0
    bias = torch.randn(32)
    q = QuantizedLinear.from_result(r, bias)  # held in the kernel layout
    stored = QuantizedLinear.from_result(r, bias, kernel_layout=False)
    assert q.layout == "kernel" and stored.layout == "stored"
    assert stored.codes.dtype == torch.int32 and stored.perm.dtype == torch.int16
    assert stored.scale_qq_scale.dtype == torch.float16 and stored.outlier_col_indices.dtype == torch.int16
    assert torch.equal(q.dequantize(), r.weight) and torch.equal(stored.dequantize(), r.weight)
    # Both layouts save the same tensors, bit for bit.
    a, b = q.state_dict(), stored.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    x = torch.randn(5, 64)
    torch.testing.assert_close(q(x), x @ r.weight.T + bias)
    # Stored size = the paper's formula + perm, row offsets and word padding.
    n = w.numel()
    assert q.stored_bits == round(q.formula_bits_per_parameter * n) + q.overhead_bits
    assert abs(q.formula_bits_per_parameter - r.bits_per_parameter) < 1e-12


@pytest.mark.parametrize("preset", ["gptq3", "rtn4"])
def test_fp16_first_level_stats_match_after_rounding(preset):
    w, xtx = _layer()
    r = quantize_weight(w, xtx, SpQRConfig.from_preset(preset, groupsize=16))
    q = QuantizedLinear.from_result(r, None)
    assert q.stored_tensors()["scale"].dtype == torch.float16 and q.bias is None
    group = torch.argsort(r.perm) // r.config.groupsize
    s, z = r.scale.half().float()[:, group], r.zero.half().float()[:, group]
    torch.testing.assert_close(q.dequantize(), s * (r.codes.float() - z), rtol=0, atol=1e-6)
    assert (q.dequantize() - r.weight).abs().max() < 1e-2
    assert q.stored_bits == round(q.formula_bits_per_parameter * w.numel()) + q.overhead_bits


def test_dtype_conversion_keeps_fp16_buffers():
    w, xtx = _layer()
    q = QuantizedLinear.from_result(quantize_weight(w, xtx, SpQRConfig()), torch.zeros(32))
    before = q.dequantize()
    q.to(torch.bfloat16)
    assert q.bias.dtype == torch.bfloat16 and q.outlier_values.dtype == torch.float16
    assert torch.equal(q.dequantize(), before)


def test_nearly_constant_statistics_stay_finite_in_fp16():
    from spqr.engine import fit_minmax, fp16_grid

    stats = 0.01 + 1e-9 * torch.arange(16.0).reshape(1, 16)  # 16 rows of almost equal scales
    s, z = fp16_grid(*fit_minmax(stats, 7))
    assert torch.isfinite(s.half()).all() and torch.isfinite(z.half()).all()
    assert torch.equal(s.half().float(), s) and torch.equal(z.half().float(), z)
    q = torch.round(stats / s[:, None] + z[:, None]).clamp(0, 7)
    # Reproduced to fp16 precision (what storing the statistic itself in fp16 would give).
    assert (s[:, None] * (q - z[:, None]) - stats).abs().max() < 0.01 * 2**-11
