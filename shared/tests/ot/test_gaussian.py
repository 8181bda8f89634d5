import ot
import pytest
import torch

from papercore.ot.gaussian import bures_barycenter, bures_map, bures_w2, sqrtm_psd


def _spd(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_bures_map_and_distance_equal_pot():
    m1, m2 = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    s1, s2 = _spd(6, 0), _spd(6, 1)
    a, b = bures_map(m1, s1, m2, s2)
    ap, bp = bures_map(m1, s1, m2, s2, backend="pot")
    torch.testing.assert_close(a, ap, rtol=0, atol=1e-6)
    torch.testing.assert_close(b, bp, rtol=0, atol=1e-6)
    assert abs(bures_w2(m1, s1, m2, s2) - bures_w2(m1, s1, m2, s2, backend="pot")) < 1e-6
    # the map pushes N(m1, S1) to N(m2, S2): A S1 A = S2
    torch.testing.assert_close(a @ s1 @ a, s2, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(sqrtm_psd(s1) @ sqrtm_psd(s1), s1)


def test_barycenter_fixed_point_equals_pot():
    covs = [_spd(4, i) for i in range(3)]
    means = [torch.randn(4, dtype=torch.float64) for _ in range(3)]
    w = [0.2, 0.5, 0.3]
    mean, cov = bures_barycenter(means, covs, w)
    mp, cp = ot.gaussian.bures_wasserstein_barycenter(
        torch.stack(means).numpy(), torch.stack(covs).numpy(), weights=torch.tensor(w, dtype=torch.float64).numpy(),
        method="fixed_point", num_iter=10_000, eps=1e-12,
    )  # fmt: skip
    torch.testing.assert_close(cov, torch.from_numpy(cp), rtol=0, atol=1e-5)
    torch.testing.assert_close(mean, torch.from_numpy(mp), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="summing to 1"):
        bures_barycenter(means, covs, [0.5, 0.5, 0.5])
