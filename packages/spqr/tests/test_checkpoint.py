import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from papercore.llm import zoo
from spqr.checkpoint import CheckpointError, load_quantized, save_quantized
from spqr.config import SpQRConfig
from spqr.quantize import quantize_
from spqr.quantized_linear import QuantizedLinear


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2)
    calib = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    quantize_(model, SpQRConfig.from_preset("w3"), calib, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "model"
    save_quantized(model, path)
    return model.eval(), path


def test_save_load_gives_identical_logits(saved):
    model, path = saved
    qcfg = json.loads((path / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "spqr_papers" and qcfg["bits"] == 3 and qcfg["beta1"] == 16
    assert qcfg["qq_scale_bits"] == 3 and qcfg["beta2"] == 16 and qcfg["outlier_threshold"] == 0.2
    layer = qcfg["layers"]["model.layers.1.mlp.down_proj"]
    assert layer["in_features"] == model.model.layers[1].mlp.down_proj.in_features
    assert layer["nnz"] == model.model.layers[1].mlp.down_proj.nnz
    assert not list(path.glob(".save-*"))  # the temporary folder is gone
    loaded = load_quantized(path)
    assert isinstance(loaded.model.layers[0].self_attn.k_proj, QuantizedLinear)
    x = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    assert not hasattr(model.config, "quantization_config") or model.config.quantization_config is None


def _tamper(saved, tmp_path, fn):
    _, path = saved
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((path / "config.json").read_text())
    state = load_file(str(path / "model.safetensors"))
    fn(state)
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    return bad


@pytest.mark.parametrize(
    "tamper,needle",
    [
        (
            lambda s: s.update(
                {"model.layers.0.mlp.up_proj.codes": s["model.layers.0.mlp.up_proj.codes"][:-1]}
            ),
            "has shape",
        ),
        (
            lambda s: s.update(
                {"model.layers.0.mlp.up_proj.perm": s["model.layers.0.mlp.up_proj.perm"].int()}
            ),
            "stored as I32",
        ),
        (
            lambda s: s.update({"model.layers.1.self_attn.v_proj.outlier_values": torch.zeros(10**4).half()}),
            "outlier_values",
        ),
        (lambda s: s.pop("model.layers.1.mlp.gate_proj.scale_qq_zero"), "gate_proj.scale_qq_zero is missing"),
        (
            lambda s: s.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(3)}),
            "unexpected tensor model.layers.0.mlp.up_proj.weight",
        ),
    ],
)
def test_mismatched_checkpoint_is_rejected(saved, tmp_path, tamper, needle):
    bad = _tamper(saved, tmp_path, tamper)
    with pytest.raises(CheckpointError, match=needle.replace(".", r"\.")):
        load_quantized(bad)


def test_not_a_spqr_checkpoint(saved, tmp_path):
    _, path = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["quantization_config"]["quant_method"] = "spqr"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="spqr_papers"):
        load_quantized(tmp_path)
    with pytest.raises(ValueError, match="no spqr.QuantizedLinear"):
        save_quantized(
            copy.deepcopy(zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=1)),
            tmp_path / "x",
        )


def test_from_pretrained_loads_through_the_registered_quantizer(saved):
    """``import spqr`` registers "spqr_papers": transformers' from_pretrained builds the same model."""
    from transformers import AutoModelForCausalLM

    import spqr
    from spqr.quantized_linear import QuantizedLinear

    _, path = saved
    ref = spqr.load_quantized(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert isinstance(model.model.layers[0].self_attn.q_proj, QuantizedLinear)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=0, atol=0)


FIXTURES = Path(__file__).with_name("fixtures")


@pytest.mark.parametrize("name", ["v1_checkpoint", "v1_gptq_checkpoint"])
def test_checkpoints_of_the_first_release_load_with_identical_logits(name):
    """Folders written by spqr 0.1 before SpQRConfig derived from papercore.config.Config (a w3 model
    with a padded 3-bit slab and 534 outliers; a gptq4 one with fp16 statistics in groups of 32 and
    tau stored as null) load with the logits recorded when they were written."""
    from safetensors.torch import load_file

    qcfg = json.loads((FIXTURES / name / "config.json").read_text())["quantization_config"]
    assert qcfg["config"]["version"] == 1
    model = load_quantized(FIXTURES / name)
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(layers) == 7 and all(m.layout == "kernel" for m in layers)
    ref = load_file(str(FIXTURES / f"{name}_logits.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(model(ref["ids"]).logits, ref["logits"], rtol=0, atol=1e-5)
    # and save again: the same tensors, bit for bit
    state = load_file(str(FIXTURES / name / "model.safetensors"))
    again = model.state_dict()
    for k, v in state.items():
        assert torch.equal(again[k], v), k
