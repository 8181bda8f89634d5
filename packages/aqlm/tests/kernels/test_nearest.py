"""The fused nearest-code kernel (aqlm.kernels.nearest) equals argmin_k a_k - 2 <c_k, u_n>.

Triton runs on CPU under TRITON_INTERPRET=1 (skipped otherwise).
"""

import pytest
import torch

from papercore.testing import triton_or_skip

TOL = 1e-5  # relative to the scores' scale: far above float32 FMA rounding over D <= 32 terms


def kernel(device: str = "cpu"):
    """The module under test, or a skip (it imports Triton)."""
    triton_or_skip(device)
    from aqlm.kernels import nearest

    return nearest


def random_inputs(n, k, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=gen)
    cb = torch.randn(k, d, generator=gen)
    a = cb.square().sum(1) + 0.1 * torch.randn(k, generator=gen)  # not only nearest centroids
    return u, cb, a


def integer_inputs(n, k, d, seed=0):
    """Small integers: every score is exact in float32, and ties are everywhere."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randint(-2, 3, (n, d), generator=gen).float()
    cb = torch.randint(-1, 2, (k, d), generator=gen).float()
    a = torch.randint(0, 4, (k,), generator=gen).float()
    return u, cb, a


def scores64(u, cb, a):
    return a.double() - 2 * u.double() @ cb.double().T


def assert_best_scores(got, u, cb, a):
    """Each row's chosen code scores (float64) within TOL of the best, and is the float64 argmin
    wherever the runner-up is more than TOL behind."""
    s = scores64(u, cb, a)
    scale = a.double().abs().max() + 2 * (u.double().abs() @ cb.double().abs().T).amax(1)
    chosen = s.gather(1, got[:, None])[:, 0]
    two = s.topk(min(2, s.shape[1]), dim=1, largest=False).values
    excess = (chosen - two[:, 0]) / scale
    assert excess.max().item() <= TOL, f"chosen score exceeds the best by {excess.max().item():.2e}"
    if s.shape[1] > 1:
        clear = (two[:, 1] - two[:, 0]) > TOL * scale
        assert torch.equal(got[clear], s.argmin(1)[clear])


@pytest.mark.parametrize("n", [1, 37, 200])
@pytest.mark.parametrize("k", [16, 256, 300])
@pytest.mark.parametrize("d", [4, 8, 16])
def test_matches_float64_argmin(n, k, d):
    nearest = kernel()
    u, cb, a = random_inputs(n, k, d, seed=n * k + d)
    got = nearest.argmin_scores_triton(u, cb, a)
    assert got.shape == (n,) and got.dtype == torch.int64
    assert_best_scores(got, u, cb, a)


@pytest.mark.parametrize(("n", "k", "d"), [(37, 300, 4), (200, 256, 8), (5, 16, 16), (64, 1000, 3)])
def test_integer_inputs_equal_torch_argmin_ties_first(n, k, d):
    """Exact scores: the same index as torch.argmin, including its first-occurrence tie rule."""
    nearest = kernel()
    u, cb, a = integer_inputs(n, k, d, seed=k + d)
    ref = torch.addmm(a, u, cb.T, alpha=-2).argmin(1)
    assert torch.equal(nearest.argmin_scores_triton(u, cb, a), ref)


def test_ties_across_tiles_go_to_the_first_copy():
    """A codebook of 20 distinct codes repeated: the minimum is in every tile, the first wins."""
    nearest = kernel()
    u, base, a_base = integer_inputs(50, 20, 8, seed=7)
    reps = torch.arange(300) % 20
    cb, a = base[reps], a_base[reps]
    ref = torch.addmm(a, u, cb.T, alpha=-2).argmin(1)
    assert (ref < 20).all()
    for cfg in (None, nearest.NearestConfig(8, 16, 1), nearest.NearestConfig(32, 128, 2)):
        assert torch.equal(nearest.argmin_scores_triton(u, cb, a, config=cfg), ref), cfg


@pytest.mark.parametrize(("block_n", "block_k", "num_warps"), [(1, 16, 1), (4, 32, 1), (64, 256, 4)])
def test_launch_settings(block_n, block_k, num_warps):
    """Ragged last row and code tiles, one tile wider than K, several tiles."""
    nearest = kernel()
    cfg = nearest.NearestConfig(block_n, block_k, num_warps)
    u, cb, a = integer_inputs(21, 70, 8, seed=3)
    ref = torch.addmm(a, u, cb.T, alpha=-2).argmin(1)
    assert torch.equal(nearest.argmin_scores_triton(u, cb, a, config=cfg), ref)
    u, cb, a = random_inputs(21, 70, 8, seed=4)
    assert_best_scores(nearest.argmin_scores_triton(u, cb, a, config=cfg), u, cb, a)


def test_other_dtypes_are_cast_and_strided_inputs_accepted():
    nearest = kernel()
    u, cb, a = integer_inputs(30, 70, 8, seed=5)
    ref = torch.addmm(a, u, cb.T, alpha=-2).argmin(1)
    got = nearest.argmin_scores_triton(u.double(), cb.half(), a.bfloat16())  # small integers: exact
    assert torch.equal(got, ref)
    spaced = torch.zeros(30, 16)
    spaced[:, ::2] = u
    assert not spaced[:, ::2].is_contiguous() and not u.T.contiguous().T.is_contiguous()
    assert torch.equal(nearest.argmin_scores_triton(spaced[:, ::2], cb, a), ref)
    assert torch.equal(nearest.argmin_scores_triton(u.T.contiguous().T, cb.T.contiguous().T, a), ref)


def test_empty_and_invalid_inputs():
    nearest = kernel()
    u, cb, a = integer_inputs(4, 16, 8)
    assert nearest.argmin_scores_triton(u[:0], cb, a).shape == (0,)
    with pytest.raises(ValueError, match="zero codes"):
        nearest.argmin_scores_triton(u, cb[:0], a[:0])
    with pytest.raises(ValueError, match="expected u"):
        nearest.argmin_scores_triton(u, cb[:, :4], a)
    with pytest.raises(ValueError, match="expected u"):
        nearest.argmin_scores_triton(u, cb, a[:3])


@pytest.mark.gpu
def test_engine_uses_the_kernel_on_cuda():
    """engine._argmin_scores on float32 CUDA tensors: same choices as the kernel and the torch path."""
    from aqlm import engine

    nearest = kernel("cuda")
    u, cb, a = (t.cuda() for t in integer_inputs(1000, 4096, 8, seed=11))
    ref = engine._argmin_scores_torch(u, cb, a, chunk_elements=1 << 20)
    assert torch.equal(engine._argmin_scores(u, cb, a), ref)
    assert torch.equal(nearest.argmin_scores_triton(u, cb, a), ref)
    u, cb, a = (t.cuda() for t in random_inputs(3000, 65536, 8, seed=12))
    assert_best_scores(engine._argmin_scores(u, cb, a).cpu(), u.cpu(), cb.cpu(), a.cpu())
