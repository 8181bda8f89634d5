import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hogwild.cache import Row, SharedCache
from hogwild.kernels import chunk_capacity, make_chunks
from hogwild.rope import RopeSpec, rotate
from papercore.testing import assert_close_rel


def make(capacity=8, layers=2):
    spec = RopeSpec(1.0 / (10000 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16)))
    return SharedCache(layers, 2, 16, spec, capacity=capacity)


def kv(n, layers=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(layers, 2, n, 16, generator=g), torch.randn(layers, 2, n, 16, generator=g)


def test_blocks_grow_move_and_keep_their_data():
    c = make(capacity=4)
    data = {}
    for i, name in enumerate(["a", "b", "c"]):
        c.create(name, capacity=2)
        data[name] = kv(3 + i, seed=i)
        c.append_kv(name, *data[name])
    for i in range(5):  # many appends: relocations and pool growth
        extra = kv(7, seed=10 + i)
        c.append_kv("a", *extra)
        data["a"] = (torch.cat([data["a"][0], extra[0]], 2), torch.cat([data["a"][1], extra[1]], 2))
    for name, (k, v) in data.items():
        assert c.length(name) == k.shape[2]
        for layer in range(2):
            assert torch.equal(c.keys_of(name, layer), k[layer])
            assert torch.equal(c.values_of(name, layer), v[layer])
    c.clear("b")
    assert c.length("b") == 0
    c.rename("c", "history0")
    assert "c" not in c and c.length("history0") == 5


def test_merge_rerotates_once_and_splits():
    c = make()
    c.create("hist")
    c.create("step")
    hk, hv = kv(5, seed=1)
    sk, sv = kv(6, seed=2)
    c.append_kv("hist", hk, hv)
    c.append_kv("step", sk, sv)
    c.merge("hist", "step", count=4)
    assert c.length("hist") == 9 and c.length("step") == 2
    # moved keys: rotated by the old history length; the rest moved back to position 0
    assert_close_rel(c.keys_of("hist", 1)[:, 5:], rotate(sk[1, :, :4], 5, c.rope.inv_freq), 1e-6)
    assert_close_rel(c.keys_of("step", 1), rotate(sk[1, :, 4:], -4, c.rope.inv_freq), 1e-6)
    assert torch.equal(c.values_of("hist", 0)[:, 5:], sv[0, :, :4])
    # the view [hist, step] is the same sequence before and after the move
    k_view, _ = c.view_kv(["hist", "step"], 0)
    want = torch.cat([hk[0], rotate(sk[0], 5, c.rope.inv_freq)], 1)
    assert_close_rel(k_view, want, 1e-6)
    with pytest.raises(ValueError, match="cannot move"):
        c.merge("hist", "step", count=3)


def test_plan_positions_and_tables():
    c = make()
    for name, n in [("p", 4), ("a", 2), ("b", 3)]:
        c.create(name)
        c.append_kv(name, *kv(n))
    plan = c.plan([Row("a", ["p", "b", "a"], [7, 8]), Row("b", ["p", "b"], [9])], pad_id=-5)
    assert plan.input_ids.tolist() == [[7, 8], [-5, 9]]
    assert plan.position_ids.tolist() == [[2, 3], [0, 3]]  # local positions in the write block
    assert plan.valid.tolist() == [[True, True], [False, True]]
    fp, fa, fb = (plan.block_names.index(n) for n in "pab")
    # worker a: view p(4) b(4 after b's write) a(4): its tokens sit at 10, 11
    assert plan.loc[fp, 0].tolist() == [10, 11] and plan.loc[fb, 0].tolist() == [6, 7]
    assert plan.loc[fa, 0].tolist() == [2, 3] and plan.rot[fp, 0].tolist() == [8, 8]
    assert plan.loc[fa, 1].tolist() == [-1, -1]  # a is not in b's view
    assert plan.loc[fb, 1].tolist() == [-1, 3] and plan.loc[fp, 1].tolist() == [-1, 7]
    c.commit(plan)
    assert c.lengths() == {"p": 4, "a": 4, "b": 4}


def test_bad_views_are_clear_errors():
    c = make()
    c.create("a")
    c.create("b")
    with pytest.raises(KeyError, match="missing block 'zz'"):
        c.plan([Row("a", ["zz", "a"], [1])])
    with pytest.raises(ValueError, match="not in its view"):
        c.plan([Row("a", ["b"], [1])])
    with pytest.raises(ValueError, match="both write"):
        c.plan([Row("a", ["a"], [1]), Row("a", ["b", "a"], [1])])
    with pytest.raises(ValueError, match="twice"):
        c.plan([Row("a", ["a", "a"], [1])])
    with pytest.raises(ValueError, match="already exists"):
        c.create("a")
    with pytest.raises(KeyError, match="no block named"):
        c.length("nope")


def oracle_tables(c, rows):
    """The plan's tables from their definitions, one token at a time (lengths before the pass)."""
    before = c.lengths()
    after = dict(before)
    for row in rows:
        after[row.write_to] += len(row.tokens)
    s = max(len(row.tokens) for row in rows)
    out = {"loc": {}, "rot": {}, "pos": [], "dst": []}
    for i, row in enumerate(rows):
        pad = s - len(row.tokens)
        starts = {n: sum(after[m] for m in row.view[: row.view.index(n)]) for n in row.view}
        for t in range(len(row.tokens)):
            local = before[row.write_to] + t
            qpos = starts[row.write_to] + local
            out["pos"].append((i, pad + t, local))
            out["dst"].append((row.write_to, local))  # slot = base after plan() reserved room
            for n in row.view:
                out["loc"][(n, i, pad + t)] = qpos - starts[n] if qpos >= starts[n] else -1
                out["rot"][(n, i, pad + t)] = starts[row.write_to] - starts[n]
    return out, s


def check_plan(c, plan, rows, want, s):
    assert plan.input_ids.shape == (len(rows), s)
    for i, t, local in want["pos"]:
        assert plan.position_ids[i, t] == local and plan.valid[i, t]
    assert int(plan.valid.sum()) == len(want["pos"])
    assert plan.write_dst.tolist() == [c._blocks[n].base + j for n, j in want["dst"]]
    for f, name in enumerate(plan.block_names):
        assert plan.block_len[f] == c.lengths()[name] + sum(len(r.tokens) for r in rows if r.write_to == name)
        assert plan.block_base[f] == c._blocks[name].base
        for i in range(len(rows)):
            for t in range(s):
                assert plan.loc[f, i, t] == want["loc"].get((name, i, t), -1), (name, i, t)
                assert plan.rot[f, i, t] == want["rot"].get((name, i, t), 0), (name, i, t)


def test_cached_plans_match_the_definitions_across_steps_merges_and_renames():
    g = torch.Generator().manual_seed(5)
    c = make(capacity=4, layers=1)
    for name in ("common", "sep", "x", "a", "b", "c"):
        c.create(name, capacity=2)
    c.append_kv("common", *kv(7, layers=1))
    views = {
        "a": ["common", "b", "sep", "c", "a"],
        "b": ["common", "b", "a"],
        "c": ["common", "c"],
    }  # b: a block after its own
    for step in range(12):
        n_tok = {"a": 1, "b": 1 + (step % 4 == 0) * 2, "c": 1}
        rows = [Row(w, views[w], torch.randint(0, 9, (n_tok[w],), generator=g).tolist()) for w in views]
        want, s = oracle_tables(c, rows)
        plan = c.plan(rows)
        check_plan(c, plan, rows, want, s)
        c.commit(plan)
        if step == 5:
            c.merge("common", "a", count=3)  # lengths change, structure does not
        if step == 8:
            c.rename("x", "y")  # a block outside every view: the structure changes all the same
    # a decode step's structure repeats: two layouts (1 and 3 tokens for b), plus the rename's
    assert len(c._layouts) == 3


def test_a_deleted_block_is_a_clear_error_even_when_the_plan_was_cached():
    c = make()
    for name in ("a", "b"):
        c.create(name)
    rows = [Row("a", ["b", "a"], [1])]
    c.commit(c.plan(rows))
    c.delete("b")
    with pytest.raises(KeyError, match="missing block 'b'"):
        c.plan(rows)
    c.create("b")  # recreated (now after a): the tables follow the new block order
    c.append_kv("b", *kv(2))
    plan = c.plan(rows)
    assert plan.block_names == ["a", "b"] and plan.loc[:, 0, 0].tolist() == [1, 3]


class DeviceOps(TorchDispatchMode):
    """Records every aten op with the devices of its tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        ins = {t.device.type for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)}
        outs = {t.device.type for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)}
        self.ops.append((str(func), ins, outs))
        return out


def decode_setup(device):
    c = SharedCache(2, 2, 16, make().rope, device=device, capacity=64)
    for name, n in [("common", 20), ("a", 3), ("b", 5)]:
        c.create(name, capacity=32)
        c.append_kv(name, *(t.to(device) for t in kv(n)))
    views = {"a": ["common", "b", "a"], "b": ["common", "a", "b"]}
    return c, views


def test_a_decode_step_plans_on_the_device_without_reading_it_back():
    # "meta" stands in for a GPU: its tensors hold no data, so any read back to the host (.item(),
    # .tolist(), a boolean mask's nonzero) raises, and any op on a host tensor shows in the log
    c, views = decode_setup("meta")
    tokens = {w: torch.ones(1, dtype=torch.long, device="meta") for w in views}
    c.commit(c.plan([Row(w, v, tokens[w]) for w, v in views.items()]))  # first step: layout uploaded
    with DeviceOps() as rec:
        plan = c.plan([Row(w, v, tokens[w]) for w, v in views.items()])
        c.commit(plan)
    host = [op for op in rec.ops if "cpu" in op[1] | op[2]]
    assert not host, f"host work or host-to-device copies in a decode step's plan: {host[:5]}"
    assert not any("local_scalar" in op[0] or "nonzero" in op[0] for op in rec.ops)
    for t in (plan.input_ids, plan.position_ids, plan.loc, plan.rot, plan.chunks, plan.write_dst):
        assert t.device.type == "meta"
    assert c.lengths() == {"common": 20, "a": 5, "b": 7}  # the host's bookkeeping still advances
    # tokens given as lists: the input ids are the one host-to-device copy
    with DeviceOps() as rec:
        c.plan([Row(w, v, [4]) for w, v in views.items()])
    copies = [op for op in rec.ops if op[0].startswith("aten._to_copy") and op[1] == {"cpu"}]
    assert len(copies) == 1 and not any("local_scalar" in op[0] for op in rec.ops)


def test_device_lengths_follow_every_host_change():
    c, views = decode_setup("cpu")
    c.merge("common", "a", count=2)
    c.clear("b")
    c.append_kv("b", *kv(70))  # outgrows its slots: moves
    c.create("x", capacity=2000)  # the pool grows: every block moves
    c.delete("x")
    c.create("y")  # reuses x's entry
    for _ in range(3):
        c.commit(c.plan([Row(w, v, [1]) for w, v in views.items()]))
    for name in c.blocks:
        b = c._blocks[name]
        assert (c._dev_len[b.entry].item(), c._dev_base[b.entry].item()) == (b.length, b.base), name


def test_the_kernel_work_list_has_a_shape_fixed_by_the_step_structure():
    c, views = decode_setup("cpu")
    c.target_programs = 16
    shapes = set()
    for _ in range(160):  # lengths cross many multiples of the 64-key tile
        plan = c.plan([Row(w, v, [1]) for w, v in views.items()])
        shapes.add(tuple(plan.chunks.shape))
        # the padded table is the host work list followed by empty chunks
        want = make_chunks(plan.block_len.tolist(), plan.loc, c.num_kv_heads, c.target_programs)
        assert plan.chunks[: len(want)].tolist() == want.tolist()
        assert not plan.chunks[len(want) :].any()
        c.commit(plan)
    f, r = len(plan.block_names), len(views)
    assert shapes == {(chunk_capacity(f, r, c.num_kv_heads, c.target_programs), 3)}
