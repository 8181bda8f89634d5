import pytest
import torch

from papercore.geometry.knn import knn
from papercore.testing import triton_or_skip


def _brute(q, r, k):
    d = ((q.double()[:, :, None] - r.double()[:, None]) ** 2).sum(-1)
    return d.topk(k, dim=-1, largest=False)


@pytest.mark.parametrize("k", [1, 7])
def test_torch_backend_matches_brute_force(k):
    g = torch.Generator().manual_seed(0)
    q, r = torch.rand(3, 300, 3, generator=g), torch.rand(3, 200, 3, generator=g)
    d, i = knn(q, r, k, backend="torch", chunk=64)
    dr, ir = _brute(q, r, k)
    assert torch.equal(i, ir) and torch.allclose(d.double(), dr, atol=1e-7)
    d1, i1 = knn(q[0], r[0], k, backend="torch")  # unbatched
    assert torch.equal(i1, ir[0])


@pytest.mark.parametrize("k", [1, 5])
def test_triton_kernel_matches_brute_force(k):
    triton_or_skip()
    g = torch.Generator().manual_seed(1)
    q, r = torch.rand(2, 70, 3, generator=g), torch.rand(2, 90, 3, generator=g)  # ragged tiles
    d, i = knn(q, r, k, backend="triton")
    dr, ir = _brute(q, r, k)
    assert torch.equal(i, ir) and torch.allclose(d.double(), dr, atol=1e-7)


def test_knn_refuses_bad_input():
    with pytest.raises(ValueError, match="k must be in"):
        knn(torch.rand(5, 3), torch.rand(4, 3), 5)
    with pytest.raises(ValueError, match="query"):
        knn(torch.rand(2, 5, 3), torch.rand(3, 4, 3), 1)
