import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from aqlm import AQLMConfig, QuantizedLinear
from aqlm.checkpoint import load_quantized, save_quantized
from aqlm.quantize import model_bits, quantize_
from papercore.llm import zoo
from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
from papercore.llm.metrics import perplexity

FAST = dict(max_epochs=4, steps_per_epoch=20, init_max_iter=20)
LIGHT = dict(max_epochs=2, steps_per_epoch=10, init_max_iter=10)  # where quality is not what is tested


@pytest.fixture(scope="module")
def tiny():
    model, tok = zoo.load("tiny")
    calib = get_calibration_data("stdlib", tok, 16, 64, seed=0, max_chars=400_000)
    test = eval_windows(get_eval_stream("stdlib", tok), 128, max_windows=24)
    return model, tok, calib, test


def rtn_(model, bits=2, group=16):
    """Round-to-nearest baseline: asymmetric min-max per group of `group` input weights."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and ".layers." in name:
            w = mod.weight.data.view(mod.out_features, -1, group)
            lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            scale = (hi - lo).clamp_min(1e-8) / (2**bits - 1)
            mod.weight.data = (torch.round((w - lo) / scale) * scale + lo).view_as(mod.weight)
    return model


def test_aqlm_beats_rtn_at_matched_bits_and_round_trips(tiny, tmp_path):
    model, tok, calib, test = tiny
    fp = perplexity(model, test, batch_size=8, progress=False)
    # 1x8g4: 2 bits of codes + codebook and scale overhead (0.69 bits on these narrow layers).
    q = copy.deepcopy(model)
    report = quantize_(q, AQLMConfig.from_scheme("1x8g4", **FAST), calib, progress=False)
    bits = model_bits(q)["quantized_linears_bits_per_parameter"]
    assert 2.0 < bits < 3.0 and len(report.layers) == 14
    ppl_aqlm = perplexity(q, test, batch_size=8, progress=False)
    # RTN at 2 bits with g=16 stores 2 fp16 statistics per 16 weights: 2 + 32/16 = 4 bits, more than AQLM here.
    ppl_rtn = perplexity(rtn_(copy.deepcopy(model)), test, batch_size=8, progress=False)
    assert ppl_aqlm < ppl_rtn and ppl_aqlm < 1.6 * fp, (fp, ppl_aqlm, ppl_rtn)

    x = test[:2]
    with torch.no_grad():
        ref = q(x).logits
    save_quantized(q, tmp_path / "q", tokenizer=tok)
    for loaded in (AutoModelForCausalLM.from_pretrained(tmp_path / "q"), load_quantized(tmp_path / "q")):
        assert isinstance(loaded.model.layers[0].mlp.up_proj, QuantizedLinear)
        with torch.no_grad():
            assert torch.equal(loaded(x).logits, ref)


def test_block_finetuning_lowers_block_error(tiny):
    model, _, calib, _ = tiny
    q = copy.deepcopy(model)
    report = quantize_(
        q,
        AQLMConfig.from_scheme("1x8g8", **LIGHT, finetune_max_epochs=3, finetune_lr=1e-3, val_size=4),
        calib,
        progress=False,
    )
    assert set(report.block_finetune) == {0, 1}
    for res in report.block_finetune.values():
        assert min(res["val_loss"]) < res["initial_val_loss"]


class Crash(Exception):
    pass


def test_resume_after_a_crash_gives_the_same_model(tiny, tmp_path, monkeypatch):
    model, _, calib, _ = tiny
    config = AQLMConfig.from_scheme("1x6g8", **LIGHT)
    calib = calib[:8]
    uninterrupted = copy.deepcopy(model)
    quantize_(uninterrupted, config, calib, progress=False)

    import aqlm.quantize as Q

    real = Q.save_block
    calls = []

    def crash_after_first_block(ckpts, block, i):
        real(ckpts, block, i)
        calls.append(i)
        if i == 0:
            raise Crash

    monkeypatch.setattr(Q, "save_block", crash_after_first_block)
    with pytest.raises(Crash):
        quantize_(copy.deepcopy(model), config, calib, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(Q, "save_block", real)
    with pytest.raises(ValueError, match="--resume"):
        quantize_(copy.deepcopy(model), config, calib, checkpoint_dir=tmp_path, progress=False)
    resumed = copy.deepcopy(model)
    report = quantize_(resumed, config, calib, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert report.resumed_blocks == [0] and all(
        name.startswith("model.layers.1.") for name in (layer.name for layer in report.layers)
    )
    for (n, a), b in zip(uninterrupted.named_modules(), resumed.modules()):
        if isinstance(a, QuantizedLinear):
            assert torch.equal(a.codes, b.codes), n
    with pytest.raises(ValueError, match="another configuration"):
        quantize_(
            copy.deepcopy(model),
            AQLMConfig.from_scheme("1x4g8", **LIGHT),
            calib,
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_bad_inputs_fail_before_work(tiny):
    model, _, calib, _ = tiny
    with pytest.raises(ValueError, match="in_group_size 24 does not divide"):
        quantize_(copy.deepcopy(model), AQLMConfig(in_group_size=24), calib, progress=False)
    broken = copy.deepcopy(model)
    broken.model.layers[1].mlp.down_proj.weight.data[3, 5] = float("nan")
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.down_proj: the weight has non-finite"):
        quantize_(broken, AQLMConfig(), calib, progress=False)
    with pytest.raises(ValueError, match="too few"):
        quantize_(copy.deepcopy(model), AQLMConfig(val_size=16), calib, progress=False)
    with pytest.raises(NotImplementedError, match="not supported"):
        quantize_(torch.nn.Sequential(torch.nn.Linear(8, 8)), AQLMConfig(), calib, progress=False)


def test_true_sequential_with_offloading(tiny):
    model, _, calib, test = tiny
    q = copy.deepcopy(model)
    report = quantize_(
        q,
        AQLMConfig.from_scheme("1x6g8", **LIGHT, true_sequential=True),
        calib[:8],
        offload=True,
        progress=False,
    )
    order = [layer.name.split(".", 3)[-1] for layer in report.layers[:7]]
    assert order[:3] == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]
    assert order[3] == "self_attn.o_proj" and order[-1] == "mlp.down_proj"
    assert all(isinstance(m, QuantizedLinear) for n, m in q.named_modules() if n.endswith(("_proj",)))
    assert perplexity(q, test[:4], progress=False) < 2 * perplexity(model, test[:4], progress=False)


def test_block_finetuning_steps_on_finetune_batch_size_sequences():
    model = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2)
    calib = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    config = AQLMConfig.from_scheme(
        "1x4g8",
        max_epochs=1,
        steps_per_epoch=2,
        init_max_iter=5,
        finetune_max_epochs=2,
        finetune_early_stop=5,
        finetune_batch_size=3,
        val_size=2,
    )
    report = quantize_(model, config, calib, progress=False)
    # 6 training sequences in batches of 3: 2 steps per epoch, in each block
    assert [r["steps"] for r in report.block_finetune.values()] == [4, 4]
    assert [r["epochs"] for r in report.block_finetune.values()] == [2, 2]
