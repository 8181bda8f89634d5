import pytest
import torch

from aquakv.grids import get_grid, monte_carlo_mse
from aquakv.kernels.hadamard import fwht, hadamard_matrix
from aquakv.quantizer import HiggsQuantizer, relative_mse


def test_fwht_round_trip_and_dense_matrix():
    x = torch.randn(3, 64)
    assert torch.allclose(fwht(fwht(x)), 64 * x, atol=1e-4)
    assert torch.allclose(fwht(x), x @ hadamard_matrix(64).T, atol=1e-4)


@pytest.mark.parametrize("d,n", [(2, 16), (2, 64), (2, 256)])
def test_relmse_matches_grid_distortion(d, n):
    torch.manual_seed(0)
    x = torch.randn(4000, 128)
    q = HiggsQuantizer(128, d, n, scale_dtype="float32")
    err = relative_mse(x, q(x))
    dist = monte_carlo_mse(get_grid(d, n), 200_000)
    assert abs(err - dist) / dist < 0.05


def test_relmse_decreases_in_n_and_is_scale_invariant_and_outlier_robust():
    torch.manual_seed(1)
    x = torch.randn(2000, 64)
    errs = [relative_mse(x, HiggsQuantizer(64, 2, n)(x)) for n in (16, 64, 256)]
    assert errs[0] > errs[1] > errs[2]
    q = HiggsQuantizer(64, 2, 16, scale_dtype="float32")
    assert abs(relative_mse(1000 * x, q(1000 * x)) - relative_mse(x, q(x))) < 1e-4
    y = x.clone()
    y[:, 3] *= 30  # a heavy outlier channel: the rotation spreads it
    assert relative_mse(y, q(y)) < 1.3 * relative_mse(x, q(x))


def test_packed_codes_round_trip_and_storage():
    torch.manual_seed(2)
    q = HiggsQuantizer(128, 2, 16, group=64)
    x = torch.randn(2, 5, 128)
    codes, _ = q.encode(x)
    rows = q.quantize(x)
    assert rows.codes.dtype == torch.int32 and rows.codes.shape == (2, 5, 128 // 2 * 4 // 32)
    assert torch.equal(q.unpack(rows.codes), codes)
    assert rows.scales.shape == (2, 5, 2) and rows.scales.dtype == torch.float16
    assert rows.nbytes == 10 * (32 + 4) == 10 * q.row_bytes()


def test_twelve_bit_codes_round_trip():
    grid = torch.randn(4096, 4)
    q = HiggsQuantizer(64, 4, 4096, grid=grid)
    codes = torch.randint(0, 4096, (3, 16))
    assert torch.equal(q.unpack(q.pack(codes)), codes)
    assert q.words == 16 * 8 // 32 + 16 * 4 // 32


@pytest.mark.parametrize("kw,msg", [(dict(group=48), "power of two"), (dict(group=256), "does not divide")])
def test_bad_groups(kw, msg):
    with pytest.raises(ValueError, match=msg):
        HiggsQuantizer(128, 2, 16, **kw)
