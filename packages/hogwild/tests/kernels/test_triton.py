import pytest
import torch

from hogwild.attention import reference_attention
from hogwild.cache import Row, SharedCache
from hogwild.kernels import make_chunks
from hogwild.rope import RopeSpec
from papercore.testing import assert_close_rel, tolerance, triton_or_skip


def case(workers, s, hq, hkv, d, dtype, seed=0, lengths=(70, 0, 33, 5)):
    g = torch.Generator().manual_seed(seed)
    spec = RopeSpec(1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)))
    cache = SharedCache(1, hkv, d, spec, dtype=dtype, capacity=16)
    names = ["common", "empty", *[f"w{i}" for i in range(workers)]]
    for name, n in zip(names, [lengths[0], lengths[1], *([lengths[2], lengths[3]] * workers)[:workers]]):
        cache.create(name, 8)
        if n:
            cache.append_kv(
                name, torch.randn(1, hkv, n, d, generator=g), torch.randn(1, hkv, n, d, generator=g)
            )
    rows = []
    for i in range(workers):
        others = [f"w{j}" for j in range(workers) if j != i][: max(0, workers - 2)]  # views differ
        rows.append(Row(f"w{i}", ["common", "empty", *others, f"w{i}"], list(range(s if i % 2 == 0 else 1))))
    plan = cache.plan(rows)
    r, width = len(rows), plan.input_ids.shape[1]
    cache.write(
        plan, 0, torch.randn(r, hkv, width, d, generator=g), torch.randn(r, hkv, width, d, generator=g)
    )
    q = torch.randn(r, hq, width, d, generator=g).to(dtype)
    return cache, plan, q


@pytest.mark.parametrize(
    "workers,s,hq,hkv,d,dtype",
    [
        (1, 1, 4, 4, 64, torch.float32),
        (2, 3, 8, 2, 64, torch.float32),
        (3, 1, 10, 2, 64, torch.float16),  # GQA 5
        (2, 2, 8, 1, 128, torch.float16),  # GQA 8
        (2, 3, 16, 1, 32, torch.float32),  # G*S = 48 rows: two M tiles
    ],
)
def test_kernel_matches_reference(workers, s, hq, hkv, d, dtype):
    triton_or_skip()
    from hogwild.kernels.triton_ops import triton_attention

    cache, plan, q = case(workers, s, hq, hkv, d, dtype)
    args = (q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.rot, plan.loc)
    want = reference_attention(*args, cache.rope.inv_freq, d**-0.5)
    # several split sizes: one chunk per block, and many small chunks reduced through the LSE kernel
    for chunks in (plan.chunks, make_chunks(plan.block_len.tolist(), plan.loc, hkv, target_programs=10**6)):
        got = triton_attention(*args, cache.rope.inv_freq, d**-0.5, chunks=chunks)
        assert got.dtype == dtype
        assert_close_rel(got, want, 1e-5 if dtype == torch.float32 else tolerance(dtype))


def test_chunks_cover_visible_keys():
    loc = torch.tensor([[[5, 9]], [[-1, -1]], [[200, 300]]])  # [F=3, R=1, S=2]
    chunks = make_chunks([100, 50, 130], loc, num_kv_heads=1, target_programs=4)
    covered = {}
    for f, a, b in chunks.tolist():
        assert b > a and ((b - a) % 64 == 0 or b == [10, 0, 130][f])  # whole tiles, but for a block's last
        covered.setdefault(f, []).append((a, b))
    assert 1 not in covered  # the hidden block costs nothing
    assert covered[0] == [(0, 10)]  # keys beyond every row's limit are skipped
    assert sorted(covered[2])[0][0] == 0 and max(b for _, b in covered[2]) == 130


class Launches:
    """Stands in for a Triton kernel: records each launch grid, then launches."""

    def __init__(self, kernel):
        self.kernel, self.grids = kernel, []

    def __getitem__(self, grid):
        self.grids.append(tuple(grid))
        return self.kernel[grid]


def test_decode_steps_launch_one_grid_and_match_the_reference(monkeypatch):
    triton_or_skip()
    from hogwild.kernels import _triton
    from hogwild.kernels.triton_ops import triton_attention

    split = Launches(_triton.hogwild_split_kernel)
    reduce = Launches(_triton.lse_reduce_kernel)
    monkeypatch.setattr(_triton, "hogwild_split_kernel", split)
    monkeypatch.setattr(_triton, "lse_reduce_kernel", reduce)
    g = torch.Generator().manual_seed(3)
    cache, plan, q = case(2, 1, 4, 2, 32, torch.float32, lengths=(10, 0, 3, 5))
    cache.commit(plan)
    for grow in (0, 60, 130, 400):  # the blocks grow between decode steps, the structure does not
        if grow:
            cache.append_kv("common", *torch.randn(2, 1, 2, grow, 32, generator=g))
        rows = [Row(w, ["common", "empty", w], [1]) for w in ("w0", "w1")]
        plan = cache.plan(rows)
        cache.write(plan, 0, torch.randn(2, 2, 1, 32, generator=g), torch.randn(2, 2, 1, 32, generator=g))
        cache.commit(plan)
        q = torch.randn(2, 4, 1, 32, generator=g)
        args = (q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.rot, plan.loc)
        want = reference_attention(*args, cache.rope.inv_freq, 32**-0.5)
        got = triton_attention(*args, cache.rope.inv_freq, 32**-0.5, chunks=plan.chunks)
        assert_close_rel(got, want, 1e-5)
    assert len(split.grids) == 4 and len(set(split.grids)) == 1 and len(set(reduce.grids)) == 1


def test_kernel_rejects_unsupported_head_dim():
    triton_or_skip()
    from hogwild.kernels.triton_ops import triton_attention

    cache, plan, q = case(1, 1, 2, 2, 16, torch.float32)
    with pytest.raises(ValueError, match="head dims"):
        triton_attention(q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.rot, plan.loc,
                         cache.rope.inv_freq, 0.25)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d,hq,hkv", [(64, 8, 8), (128, 20, 4), (128, 32, 4), (256, 16, 2)])
def test_kernel_on_gpu(dtype, d, hq, hkv):
    from hogwild.bench import make_case, reference_output, run_hogwild
    from papercore.testing import rel_error

    for w, s in ((1, 1), (4, 3)):
        c = make_case(w, 5000, hq, hkv, d, dtype, "cuda", tokens=s)
        assert rel_error(run_hogwild(c, "triton").float(), reference_output(c)) <= 2e-2
