import copy

import pytest
import torch
from torch import nn

from papercore.llm import zoo
from spqr.config import SpQRConfig
from spqr.engine import quantize_weight
from spqr.quantize import model_bits, quantize_
from spqr.quantized_linear import QuantizedLinear


def _model(arch="qwen3", layers=2):
    return zoo.random_model(arch, vocab_size=64, hidden_size=32, num_layers=layers)


def _calib(n=4, seqlen=16):
    return torch.randint(0, 64, (n, seqlen), generator=torch.Generator().manual_seed(0))


def _linear_inputs(model, block, calib):
    """XᵀX / T (float64) of the inputs of each linear of decoder block ``block`` over ``calib``."""
    inputs = {}

    def hook(name):
        def fn(module, args, output):
            inputs.setdefault(name, []).append(args[0].detach().reshape(-1, args[0].shape[-1]).double())

        return fn

    layer = model.model.layers[block]
    hooks = [m.register_forward_hook(hook(n)) for n, m in layer.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(calib)
    for h in hooks:
        h.remove()
    return {n: (lambda x: x.T @ x / x.shape[0])(torch.cat(xs)) for n, xs in inputs.items()}


def test_model_quantization_applies_the_engine_to_every_decoder_linear():
    """Each linear's weight becomes the engine's result for the XᵀX of its real inputs: for block 0
    those of the original model, for block 1 those of the model whose block 0 is already quantized
    (block-sequential calibration). Computed here with forward hooks, apart from papercore.llm.calib."""
    model = _model()
    calib = _calib()
    cfg = SpQRConfig.from_preset("w3")
    q = copy.deepcopy(model)
    report = quantize_(q, cfg, calib, store=False, progress=False)
    assert len(report.layers) == 14 and report.bits_per_parameter >= 3.6
    assert report.layers[0].name == "model.layers.0.self_attn.q_proj" and report.layers[0].relative_loss > 0
    mixed = copy.deepcopy(model)
    mixed.model.layers[0] = q.model.layers[0]  # what block 1 sees during calibration
    for block, source in ((0, model), (1, mixed)):
        xtx = _linear_inputs(source, block, calib)
        assert len(xtx) == 7
        for name, h in xtx.items():
            original = model.model.layers[block].get_submodule(name).weight
            want = quantize_weight(original.detach().float(), h, cfg).weight
            got = q.model.layers[block].get_submodule(name).weight
            assert not torch.equal(got, original)
            torch.testing.assert_close(
                got, want.to(got.dtype), rtol=0, atol=1e-6, msg=f"block {block} {name}"
            )


def test_store_swaps_linears_and_computes_the_simulated_model():
    model = _model()
    calib = _calib()
    sim, stored = copy.deepcopy(model), copy.deepcopy(model)
    quantize_(sim, SpQRConfig.from_preset("w4"), calib, store=False, progress=False)
    quantize_(stored, SpQRConfig.from_preset("w4"), calib, progress=False)
    layer = stored.model.layers[1].mlp.down_proj
    assert isinstance(layer, QuantizedLinear)
    assert torch.equal(layer.dequantize(), sim.model.layers[1].mlp.down_proj.weight)
    x = torch.randint(0, 64, (2, 12))
    torch.testing.assert_close(stored(x).logits, sim(x).logits, rtol=0, atol=1e-5)
    bits = model_bits(stored)
    assert bits["quantized_linears_bits_per_parameter"] > bits["formula_bits_per_parameter"] >= 4.625


def test_resume_after_a_crash_gives_the_same_codes(tmp_path, monkeypatch):
    import spqr.quantize as sq

    model = _model()
    calib = _calib()
    cfg = SpQRConfig.from_preset("w3")
    full = copy.deepcopy(model)
    quantize_(full, cfg, calib, progress=False)

    calls = {"n": 0}
    real = sq.quantize_weight

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # inside block 1
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    crashed = copy.deepcopy(model)
    monkeypatch.setattr(sq, "quantize_weight", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        quantize_(crashed, cfg, calib, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(sq, "quantize_weight", real)
    assert sorted(p.name for p in tmp_path.glob("block_*")) == ["block_0000.safetensors"]
    # Without resume the folder is refused; with another config too.
    with pytest.raises(ValueError, match="resume"):
        quantize_(copy.deepcopy(model), cfg, calib, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="wbits"):
        quantize_(copy.deepcopy(model), SpQRConfig(wbits=4), calib, checkpoint_dir=tmp_path, resume=True)
    resumed = copy.deepcopy(model)
    report = quantize_(resumed, cfg, calib, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert report.resumed_blocks == [0] and len(report.layers) == 7
    a, b = dict(full.named_buffers()), dict(resumed.named_buffers())
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_errors_before_work():
    model = _model("llama", layers=1)
    model.model.layers[0].mlp.up_proj.weight.data[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.up_proj"):
        quantize_(model, SpQRConfig.from_preset("w4"), _calib(2, 8), progress=False)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_proj: groupsize 64"):
        quantize_(_model(layers=1), SpQRConfig(groupsize=64), _calib(2, 8), progress=False)
    with pytest.raises(ValueError, match="too few calibration sequences"):
        quantize_(_model(layers=1), SpQRConfig(), _calib(2, 8)[:0], progress=False)
