import copy

import pytest
import torch

from papercore import zoo
from spqr.config import SpQRConfig
from spqr.quantize import quantize_


def test_model_quantization_applies_the_engine_to_every_decoder_linear():
    model = zoo.random_model("qwen3", vocab_size=64, hidden_size=32, num_layers=2)
    calib = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    q = copy.deepcopy(model)
    report = quantize_(q, SpQRConfig.from_preset("w3"), calib, progress=False)
    assert len(report.layers) == 14 and report.bits_per_parameter >= 3.6
    first = report.layers[0]
    assert first.name == "model.layers.0.self_attn.q_proj" and first.relative_loss > 0
    # Block 0 sees the original inputs: its q_proj equals the engine applied directly.
    w = q.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(w, model.model.layers[0].self_attn.q_proj.weight)
    assert torch.unique(w[0, :16]).numel() <= 2**3 + 16  # codes (plus any outliers) per 16-column group


def test_bad_layer_is_named():
    model = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=1)
    model.model.layers[0].mlp.up_proj.weight.data[0, 0] = float("inf")
    calib = torch.randint(0, 64, (2, 8))
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.up_proj"):
        quantize_(model, SpQRConfig.from_preset("w4"), calib, progress=False)
