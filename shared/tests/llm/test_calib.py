import pytest
import torch

from papercore.llm import zoo
from papercore.llm.calib import BlockContext, CalibConfig, capture_block_inputs, run_calibration
from papercore.testing import rel_error

ARCHS = ["llama", "qwen3"]


def make_model(arch):
    return zoo.random_model(
        arch, seed=0, vocab_size=128, hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2
    )


def calib_ids(n=3, seqlen=12, vocab=128):
    return torch.randint(0, vocab, (n, seqlen), generator=torch.Generator().manual_seed(0))


def block_outputs(model, ids):
    """Each decoder block's output on each sequence, from hooks on the unmodified model."""
    outs = {i: [] for i in range(len(model.model.layers))}
    hooks = [
        layer.register_forward_hook(
            lambda m, inp, out, i=i: outs[i].append(out[0] if isinstance(out, tuple) else out)
        )
        for i, layer in enumerate(model.model.layers)
    ]
    with torch.no_grad():
        for seq in ids:
            model(input_ids=seq[None], use_cache=False)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("arch", ARCHS)
def test_xtx_equals_direct_computation(arch):
    model = make_model(arch)
    ids = calib_ids()
    # Direct: capture every linear's input with hooks on a plain forward pass.
    inputs = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, n=n: inputs.setdefault(n, []).append(inp[0].reshape(-1, inp[0].shape[-1]))
        )
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layers." in n
    ]
    with torch.no_grad():
        for seq in ids:
            model(input_ids=seq[None], use_cache=False)
    for h in hooks:
        h.remove()
    seen = {}

    def callback(ctx: BlockContext):
        for name, xtx in ctx.xtx.items():
            seen[f"model.layers.{ctx.index}.{name}"] = (xtx, ctx.num_tokens[name])

    run_calibration(model, ids, callback, CalibConfig(progress=False))
    assert set(seen) == set(inputs)
    for name, xs in inputs.items():
        x = torch.cat(xs).double()
        direct = x.T @ x / x.shape[0]
        xtx, count = seen[name]
        assert xtx.dtype == torch.float64 and count == x.shape[0]
        assert rel_error(xtx, direct) <= 1e-10, name


@pytest.mark.parametrize("arch", ["llama", "qwen3", "mistral", "qwen2"])
@pytest.mark.parametrize("offload", [False, True])
def test_identity_callback_reproduces_hidden_states(arch, offload):
    model = make_model(arch)
    ids = calib_ids()
    expected = block_outputs(model, ids)
    got = {}

    def callback(ctx):
        got[ctx.index] = [ctx.reference_outputs[b] for b in range(len(ctx.inputs))]

    final = run_calibration(model, ids, callback, CalibConfig(offload=offload, progress=False, batch_size=2))
    assert final.storage.type == "cpu"
    for i in range(len(model.model.layers)):
        ref = torch.cat(expected[i])
        assert rel_error(torch.cat(got[i]), ref) <= 1e-5, f"block {i}"
    assert rel_error(torch.cat(final.hidden), torch.cat(expected[len(model.model.layers) - 1])) <= 1e-5


def test_modified_blocks_propagate_and_true_sequential_order():
    model = make_model("llama")
    ids = calib_ids()
    order = []

    def zero_down(ctx):
        order.append((ctx.index, ctx.group, sorted(ctx.linears)))
        for name, lin in ctx.linears.items():
            if name.endswith("down_proj"):
                lin.weight.zero_()

    final = run_calibration(model, ids, zero_down, CalibConfig(true_sequential=True, progress=False))
    assert [o[2] for o in order[:4]] == [
        ["self_attn.k_proj", "self_attn.q_proj", "self_attn.v_proj"],
        ["self_attn.o_proj"],
        ["mlp.gate_proj", "mlp.up_proj"],
        ["mlp.down_proj"],
    ]
    assert len(order) == 4 * len(model.model.layers)
    # With every MLP output zeroed, the residual stream must match a model whose MLPs return 0.
    expected = block_outputs(model, ids)[len(model.model.layers) - 1]
    assert rel_error(torch.cat(final.hidden), torch.cat(expected)) <= 1e-5


def test_sequential_statistics_see_modified_earlier_groups():
    model = make_model("llama")
    ids = calib_ids()
    stats = {}

    def cb(ctx):
        if ctx.index == 0 and ctx.group == 1:  # o_proj: its input depends on v_proj, zeroed in group 0
            stats["o"] = ctx.xtx["self_attn.o_proj"]
        if ctx.index == 0 and ctx.group == 0:
            ctx.linears["self_attn.v_proj"].weight.zero_()

    run_calibration(model, ids, cb, CalibConfig(true_sequential=True, progress=False))
    assert stats["o"].abs().max() == 0


def test_capture_submodule_outputs():
    model = make_model("qwen3")
    ids = calib_ids()
    got = {}

    def cb(ctx):
        got[ctx.index] = ctx.captured["self_attn.k_proj"]

    run_calibration(
        model, ids, cb, CalibConfig(capture=("self_attn.k_proj",), progress=False, collect_xtx=False)
    )
    assert len(got[0]) == len(ids) and got[0][0].shape == (1, ids.shape[1], 2 * 8)


def test_unsupported_model_is_named():
    class Plain(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match="Plain is not supported"):
        capture_block_inputs(Plain(), calib_ids())


def test_blocks_run_in_the_requested_dtype_and_come_back():
    model = make_model("llama")
    ids = calib_ids()
    expected = torch.cat(block_outputs(model, ids)[len(model.model.layers) - 1])
    seen = []
    final = run_calibration(
        model,
        ids,
        lambda ctx: seen.append(ctx.block.mlp.down_proj.weight.dtype),
        CalibConfig(dtype=torch.float64, progress=False),
    )
    assert seen == [torch.float64] * len(model.model.layers)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert final.hidden[0].dtype == torch.float64
    assert rel_error(torch.cat(final.hidden), expected) <= 1e-5


def test_gemma_family_blocks():
    from transformers import AutoModelForCausalLM, GemmaConfig

    cfg = GemmaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    ids = calib_ids(vocab=64)
    expected = block_outputs(model, ids)
    got = {}
    run_calibration(
        model, ids, lambda ctx: got.setdefault(ctx.index, ctx.reference_outputs), CalibConfig(progress=False)
    )
    for i in range(2):
        assert rel_error(torch.cat(got[i]), torch.cat(expected[i])) <= 1e-5


def test_block_checkpoints_round_trip_and_refusals(tmp_path):
    from papercore.llm.calib import BlockCheckpoints

    model = make_model("llama")
    ckpts = BlockCheckpoints(tmp_path, {"bits": 2, "groups": (8,)}, resume=False)
    ckpts.save(model.model.layers[0], 0)
    assert ckpts.done(0) and not ckpts.done(1)
    other = make_model("llama")
    with torch.no_grad():
        other.model.layers[0].mlp.up_proj.weight.zero_()
    BlockCheckpoints(tmp_path, {"bits": 2, "groups": (8,)}, resume=True).load(
        other.model.layers[0], 0, lambda name, linear, state: None
    )
    assert torch.equal(other.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(ValueError, match="--resume"):
        BlockCheckpoints(tmp_path, {"bits": 2, "groups": [8]}, resume=False)
    with pytest.raises(ValueError, match="differs in: bits"):
        BlockCheckpoints(tmp_path, {"bits": 3, "groups": [8]}, resume=True)
    with pytest.raises(ValueError, match="does not match block 0"):
        ckpts.load(model.model.layers[1].mlp, 0, lambda name, linear, state: None)
