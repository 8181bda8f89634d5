import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from aqlm import QuantizedLinear
from aqlm.checkpoint import CheckpointError, load_quantized, save_quantized


def test_upstream_format_on_disk(tiny_random_quantized, tmp_path):
    save_quantized(tiny_random_quantized, tmp_path / "q")
    cfg = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "aqlm"
    assert (cfg["num_codebooks"], cfg["nbits_per_codebook"], cfg["in_group_size"], cfg["out_group_size"]) == (
        2,
        4,
        8,
        1,
    )
    assert "lm_head.weight" in cfg["linear_weights_not_to_quantize"]
    tensors = load_file(tmp_path / "q" / "model.safetensors")
    q = "model.layers.0.self_attn.q_proj"
    assert tensors[f"{q}.codes"].dtype == torch.int8 and tensors[f"{q}.codes"].shape == (32, 4, 2)
    assert tensors[f"{q}.codebooks"].shape == (2, 16, 1, 8) and tensors[f"{q}.scales"].shape == (32, 1, 1, 1)
    assert f"{q}.weight" not in tensors


def test_round_trip_through_transformers_and_load_quantized(tiny_random_quantized, tmp_path):
    x = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        ref = tiny_random_quantized(x).logits
    save_quantized(tiny_random_quantized, tmp_path / "q")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    ours = load_quantized(tmp_path / "q")
    for model in (hf, ours):
        assert isinstance(model.model.layers[1].mlp.down_proj, QuantizedLinear)
        with torch.no_grad():
            assert torch.equal(model(x).logits, ref)


def test_mismatched_checkpoint_is_rejected(tiny_random_quantized, tmp_path):
    path = save_quantized(tiny_random_quantized, tmp_path / "q")
    weights = path / "model.safetensors"
    tensors = load_file(weights)
    bad = dict(tensors)
    bad["model.layers.0.self_attn.q_proj.codes"] = bad["model.layers.0.self_attn.q_proj.codes"][
        :, :2
    ].contiguous()
    save_file(bad, weights)
    with pytest.raises(CheckpointError, match="q_proj.codes has shape"):
        load_quantized(path)
    bad = dict(tensors)
    bad["model.layers.0.self_attn.q_proj.codes"] = bad["model.layers.0.self_attn.q_proj.codes"].to(
        torch.int16
    )
    save_file(bad, weights)
    with pytest.raises(CheckpointError, match="stored as I16"):
        load_quantized(path)
    bad = dict(tensors)
    del bad["model.layers.1.mlp.up_proj.scales"]
    save_file(bad, weights)
    with pytest.raises(CheckpointError, match="missing"):
        load_quantized(path)
    with pytest.raises(FileNotFoundError):
        load_quantized(tmp_path / "nowhere")
