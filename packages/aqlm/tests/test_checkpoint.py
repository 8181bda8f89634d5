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
    assert tensors[f"{q}.codebooks"].dtype == tensors[f"{q}.scales"].dtype == torch.float16  # upstream dtype
    # 4-bit codes >= 8 are stored minus 16, as upstream's convert_to_hf packs them
    assert tensors[f"{q}.codes"].min() >= -8 and tensors[f"{q}.codes"].max() < 8
    assert (tensors[f"{q}.codes"] < 0).any()
    assert f"{q}.weight" not in tensors


def test_round_trip_through_transformers_and_load_quantized(tiny_random_quantized, tmp_path):
    x = torch.randint(0, 64, (2, 9))
    save_quantized(tiny_random_quantized, tmp_path / "q")  # rounds codebooks to fp16 in place
    with torch.no_grad():
        ref = tiny_random_quantized(x).logits
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


def test_saving_into_a_folder_that_holds_other_files(tiny_random_quantized, tmp_path):
    out = tmp_path / "run"
    (out / ".blocks").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    (out / "model-00001-of-00002.safetensors").write_bytes(b"stale")  # an older model's shard
    save_quantized(tiny_random_quantized, out)
    assert (out / "summary.json").is_file() and (out / ".blocks").is_dir()
    assert not (out / "model-00001-of-00002.safetensors").exists()
    assert isinstance(load_quantized(out).model.layers[0].mlp.up_proj, QuantizedLinear)


def test_codebooks_are_stored_in_fp16_and_bits_count_what_is_stored(tmp_path):
    from safetensors import safe_open

    from aqlm import AQLMConfig
    from aqlm.quantize import model_bits, quantize_
    from papercore.llm import zoo

    model = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=1)
    calib = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    cfg = AQLMConfig(num_codebooks=1, nbits_per_codebook=6, in_group_size=8, max_epochs=1, steps_per_epoch=2)
    report = quantize_(model, cfg, calib, progress=False)
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert all(m.codebooks.dtype == m.scales.dtype == torch.float16 for m in layers)
    assert model.model.norm.weight.dtype == torch.float32  # the rest keeps the model's dtype
    save_quantized(model, tmp_path / "q")
    stored_bits = params = 0
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as st:
        for key in st.keys():  # noqa: SIM118
            if key.endswith((".codes", ".codebooks", ".scales")):
                t = st.get_tensor(key)
                stored_bits += t.numel() * t.element_size() * 8
    params = sum(m.in_features * m.out_features for m in layers)
    # 6-bit codes take an int8 each: 1 bit per weight, not 0.75
    assert model_bits(model)["quantized_linears_bits_per_parameter"] == pytest.approx(stored_bits / params)
    assert sum(r.bits_per_parameter * r.shape[0] * r.shape[1] for r in report.layers) == pytest.approx(
        stored_bits
    )
    loaded = load_quantized(tmp_path / "q")
    assert loaded.model.layers[0].mlp.up_proj.codebooks.dtype == torch.float16
    assert model_bits(loaded) == model_bits(model)
