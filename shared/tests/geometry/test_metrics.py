import math

import numpy as np
import ot
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import jensenshannon

from papercore.geometry import metrics as M
from papercore.geometry.shapes import sample_shapes


def _clouds(n=4, pts=256, seed=0, name="table"):
    return sample_shapes(name, n, pts, seed=seed)


def test_chamfer_zero_symmetric_and_equal_to_kdtree():
    x, y = _clouds(3, 300, 0), _clouds(3, 200, 1)
    assert torch.equal(M.chamfer(x, x), torch.zeros(3))
    assert torch.allclose(M.chamfer(x, y), M.chamfer(y, x))
    ref = []
    for a, b in zip(x.double().numpy(), y.double().numpy()):
        ref.append((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())
    assert torch.allclose(M.chamfer(x, y).double(), torch.tensor(ref), rtol=1e-5)


def test_exact_emd_permutation_translation_and_pot():
    x = _clouds(2, 128, 2)
    perm = x[:, torch.randperm(128, generator=torch.Generator().manual_seed(0))]
    assert torch.allclose(M.emd_exact(x, perm), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    t = torch.tensor([0.3, -0.1, 0.2])
    assert torch.allclose(
        M.emd_exact(x, x + t), torch.full((2,), float(t.norm()), dtype=torch.float64), rtol=1e-6
    )
    y = _clouds(2, 128, 3)
    a, b = x[0].double().numpy(), y[0].double().numpy()
    pot = ot.emd2(ot.unif(128), ot.unif(128), ot.dist(a, b, metric="euclidean"))
    assert M.emd_exact(x, y)[0].item() == pytest.approx(pot, rel=1e-9)
    # unequal sizes go through POT
    pot2 = ot.emd2(ot.unif(128), ot.unif(64), ot.dist(a, b[:64], metric="euclidean"))
    assert M.emd_exact(x[:1], y[:1, :64])[0].item() == pytest.approx(pot2, rel=1e-9)


def test_auction_emd_is_certified_and_within_one_percent_of_pot():
    x, y = _clouds(4, 256, 4), _clouds(4, 256, 5)
    r = M.emd_auction(x, y, tol=1e-2)
    exact = M.emd_exact(x, y)
    assert (r.lower <= exact + 1e-9).all() and (exact <= r.value + 1e-9).all(), "bounds bracket the exact EMD"
    assert ((r.value - exact) / exact).max() <= 0.01
    assert (r.certified_gap <= 0.01 + 1e-12).all()
    # the matching is a permutation whose cost is the value
    assert all(sorted(a.tolist()) == list(range(256)) for a in r.assignment)
    t = torch.tensor([0.2, 0.0, 0.1])
    assert torch.allclose(
        M.emd_auction(x, x + t, tol=1e-3).value,
        torch.full((4,), float(t.norm()), dtype=torch.float64),
        rtol=1e-3,
    )


def test_mmd_cov_cases():
    refs = _clouds(6, 128, 6)
    D = M.pairwise(refs, refs, "cd")
    assert M.mmd(D) == 0.0 and M.coverage(D) == 1.0
    copies = refs[2:3].expand(6, -1, -1)
    assert M.coverage(M.pairwise(copies, refs, "cd")) == pytest.approx(1 / 6)
    # the MMD is the mean over references of the nearest sample's distance (hand-made matrix)
    D = torch.tensor([[1.0, 4.0, 2.0], [3.0, 0.5, 5.0]])
    assert M.mmd(D) == pytest.approx((1 + 0.5 + 2) / 3) and M.coverage(D) == pytest.approx(2 / 3)


def test_one_nna_iid_and_disjoint():
    a, b = _clouds(16, 64, 7, "box"), _clouds(16, 64, 8, "box")
    kw = dict(symmetric=True)
    nna = M.one_nna(M.pairwise(a, b), M.pairwise(a, a, **kw), M.pairwise(b, b, **kw))
    assert 0.3 <= nna <= 0.7
    c = _clouds(16, 64, 9, "box") + torch.tensor([1.0, 0, 0])  # the same family, far away
    assert M.one_nna(M.pairwise(a, c), M.pairwise(a, a, **kw), M.pairwise(c, c, **kw)) == 1.0
    # hand-made: two far-apart groups -> 1.0; interleaved -> 0.0
    D_sr = torch.full((2, 2), 10.0)
    assert M.one_nna(D_sr, torch.tensor([[0, 1.0], [1.0, 0]]), torch.tensor([[0, 1.0], [1.0, 0]])) == 1.0
    assert M.one_nna(torch.eye(2) * 0 + 0.1, torch.full((2, 2), 5.0), torch.full((2, 2), 5.0)) == 0.0


def _jsd_reference(a, b, res=28):
    """latent_3d_points' recipe, written independently: nearest grid point of a clipped 28^3 grid."""
    ticks = np.linspace(-0.5, 0.5, res)
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[np.linalg.norm(grid, axis=1) <= 0.5]
    tree = cKDTree(grid)

    def counts(x):
        return np.bincount(tree.query(x.reshape(-1, 3))[1], minlength=len(grid)).astype(float)

    return jensenshannon(counts(a), counts(b), base=2) ** 2


def test_jsd_zero_bounded_and_matches_reference():
    a, b = _clouds(8, 256, 10), _clouds(8, 256, 11, "lamp")
    assert M.jsd(a, a) == pytest.approx(0.0, abs=1e-12)
    v = M.jsd(a, b)
    assert 0 < v <= 1 and v == pytest.approx(_jsd_reference(a.double().numpy(), b.double().numpy()), rel=1e-6)
    left = torch.tensor([[[-0.4, 0, 0]]]).expand(1, 10, 3)
    right = torch.tensor([[[0.4, 0, 0]]]).expand(1, 10, 3)
    assert M.jsd(left, right) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside the ball of radius 0.5"):
        M.jsd(a * 2, b)


def test_check_clouds_and_evaluate():
    x = _clouds(4, 64, 12)
    bad = x.clone()
    bad[1, 3, 0] = math.nan
    with pytest.raises(ValueError, match="cloud 1 holds NaN"):
        M.chamfer(bad, x)
    with pytest.raises(ValueError, match="fewer than the 8 needed"):
        M.check_clouds(x[:, :4], min_points=8)
    res = M.evaluate(x, x, ["mmd-cd", "cov-cd", "1nna-cd", "mmd-emd", "cov-emd", "jsd"])
    assert res["mmd-cd"] == 0 and res["cov-cd"] == 1 and res["mmd-emd"] == pytest.approx(0, abs=1e-9)
    assert res["cov-emd"] == 1 and res["jsd"] == pytest.approx(0, abs=1e-12)
    assert res["1nna-cd"] == 0.0  # every cloud's nearest other cloud is its copy in the other set
    with pytest.raises(ValueError, match="unknown metric"):
        M.evaluate(x, x, ["fid"])
