import pytest
import torch

from hogwild.attention import hogwild_attention, reference_attention
from hogwild.cache import Row, SharedCache
from hogwild.rope import RopeSpec, rotate
from papercore.testing import assert_close_rel


def rope(d):
    return RopeSpec(1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)))


def explicit_attention(cache, row, q_row, scale):
    """Independent check: concatenate the view's blocks, re-rotate each key to its place, rotate the
    query at its absolute position, causal softmax attention. ``q_row``: [Hq, n, D] unrotated."""
    k, v = cache.view_kv(row.view, 0)  # [Hkv, T, D], keys at view positions
    k, v = k.double(), v.double()
    starts, off = {}, 0
    for name in row.view:
        starts[name] = off
        off += cache.length(name)
    n = len(row.tokens)
    qpos = starts[row.write_to] + cache.length(row.write_to) - n + torch.arange(n)
    g = q_row.shape[0] // k.shape[0]
    q = rotate(q_row.double(), qpos, cache.rope.inv_freq)
    scores = torch.einsum("hsd,htd->hst", q, k.repeat_interleave(g, 0)) * scale
    scores = scores.masked_fill(torch.arange(k.shape[1]) > qpos[:, None], float("-inf"))
    return torch.softmax(scores, -1) @ v.repeat_interleave(g, 0)


def random_case(workers, s, hq=4, hkv=2, d=32, seed=0, dtype=torch.float32, empty=True, absent=True):
    """A cache with a shared prefix, an empty block, per-worker blocks, and views that differ."""
    g = torch.Generator().manual_seed(seed)
    cache = SharedCache(1, hkv, d, rope(d), dtype=dtype, capacity=8)
    lengths = {
        "common": 37,
        "empty": 0,
        **{f"w{i}": int(torch.randint(0, 20, (1,), generator=g)) for i in range(workers)},
    }
    for name, n in lengths.items():
        cache.create(name, capacity=4)
        if n:
            cache.append_kv(
                name, torch.randn(1, hkv, n, d, generator=g), torch.randn(1, hkv, n, d, generator=g)
            )
    rows = []
    for i in range(workers):
        others = [
            f"w{j}"
            for j in range(workers)
            if j != i and not (absent and j == (i + 1) % workers and workers > 2)
        ]
        view = ["common", *(["empty"] if empty else []), *others, f"w{i}"]
        n_tok = s if i % 2 == 0 else max(1, s - 1)  # rows of different lengths: left padding
        rows.append(Row(f"w{i}", view, list(range(n_tok))))
    plan = cache.plan(rows)
    r, width = len(rows), plan.input_ids.shape[1]
    k = torch.randn(r, hkv, width, d, generator=g)
    v = torch.randn(r, hkv, width, d, generator=g)
    cache.write(plan, 0, k.to(dtype), v.to(dtype))
    cache.commit(plan)
    q = torch.randn(r, hq, width, d, generator=g).to(dtype)
    return cache, rows, plan, q


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("s", [1, 3])
@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 2)])
def test_query_rotation_equals_explicit_concatenation(workers, s, hq, hkv):
    cache, rows, plan, q = random_case(workers, s, hq, hkv, seed=workers * 10 + s)
    scale = 32**-0.5
    # unrotated queries: rotate each by its full distance to the block start (rot = loc)
    out = reference_attention(
        q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.loc, plan.loc,
        cache.rope.inv_freq, scale,
    )  # fmt: skip
    width = q.shape[2]
    for i, row in enumerate(rows):
        n = len(row.tokens)
        want = explicit_attention(cache, row, q[i, :, width - n :], scale)
        assert_close_rel(out[i, :, width - n :], want, 1e-5, f"row {i}")
        assert torch.all(out[i, :, : width - n] == 0)  # padding sees nothing


def test_model_style_rotation_matches_unrotated(seed):
    """Queries already rotated at their local positions (what a model hands over) with ``rot``."""
    cache, rows, plan, q = random_case(3, 3)
    local = plan.position_ids[None, :, None, :].expand(1, *q.shape[:3])[0]
    q_model = rotate(q, local, cache.rope.inv_freq)
    args = (cache.keys[0], cache.values[0], plan.block_base, plan.block_len)
    a = reference_attention(q, *args, plan.loc, plan.loc, cache.rope.inv_freq, 0.2)
    b = reference_attention(q_model, *args, plan.rot, plan.loc, cache.rope.inv_freq, 0.2)
    assert_close_rel(b, a, 1e-5)


def test_hidden_block_has_no_effect(seed):
    cache, rows, plan, q = random_case(2, 1, empty=False)
    args = (q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len)
    full = reference_attention(*args, plan.loc, plan.loc, cache.rope.inv_freq, 0.2)
    hidden = plan.loc.clone()
    f = plan.block_names.index("w1")
    hidden[f, 0] = -1  # worker 0 no longer sees w1 ...
    out = reference_attention(*args, hidden, hidden, cache.rope.inv_freq, 0.2)
    assert not torch.allclose(out[0], full[0])
    assert torch.equal(out[1], full[1])  # ... worker 1 is unaffected


def test_bad_tables_are_rejected():
    cache, rows, plan, q = random_case(2, 1)
    with pytest.raises(ValueError, match="block tables"):
        hogwild_attention(
            q, cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.loc[:, :1], plan.loc,
            cache.rope.inv_freq, backend="torch",
        )  # fmt: skip
    with pytest.raises(ValueError, match="multiple"):
        reference_attention(
            q[:, :3], cache.keys[0], cache.values[0], plan.block_base, plan.block_len, plan.loc, plan.loc,
            cache.rope.inv_freq, 0.1,
        )  # fmt: skip
