import pytest
import torch

from aquakv.cache import AquaKVCache
from aquakv.calibrate import calibrate
from aquakv.config import AquaKVConfig
from aquakv.evaluate import chunked_perplexity
from papercore.llm import zoo


@pytest.fixture(scope="module")
def tiny():
    return zoo.load("tiny")


def test_calibration_fits_predictors_and_resumes(tiny, tmp_path):
    m, tok = tiny
    torch.manual_seed(0)
    windows = torch.randint(0, 4096, (6, 64))
    cfg = AquaKVConfig(first_layer_bits=16)
    res = calibrate(m, windows, cfg, valid_nsamples=2, out_dir=tmp_path, progress=False)
    l1 = res.layers[1]
    assert l1.key_pred_rel_mse < 1 and l1.value_pred_rel_mse < 1  # the predictors explain part of K and V
    assert res.layers[0].key_rel_mse < 1e-5  # fp16 layer 0
    # Residual quantization beats quantizing the values directly (same grid).
    assert l1.value_rel_mse < 0.107
    again = calibrate(m, windows, cfg, valid_nsamples=2, out_dir=tmp_path, resume=True, progress=False)
    assert again.layers[1].resumed and torch.equal(again.predictors.key[1][0], res.predictors.key[1][0])
    with pytest.raises(ValueError, match="--resume"):
        calibrate(m, windows, cfg, valid_nsamples=2, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        calibrate(m, windows, AquaKVConfig(), valid_nsamples=2, out_dir=tmp_path, resume=True, progress=False)
    # The calibrated cache runs under chunked feeding.
    test = torch.randint(0, 4096, (2, 96))
    ppl, cache = chunked_perplexity(
        m, test, lambda: AquaKVCache(m, res.predictors, AquaKVConfig(buffer_size=16))
    )
    assert ppl > 1 and cache.memory()["quantized_tokens"] > 0


def test_non_finite_activations_are_an_error():
    m = zoo.random_model("llama", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1)
    with torch.no_grad():
        m.model.layers[1].self_attn.k_proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        calibrate(m, torch.randint(0, 256, (2, 16)), AquaKVConfig(), progress=False)


def test_calibration_resumes_per_layer_after_an_interruption(tmp_path, monkeypatch):
    from aquakv import predictors as P

    m = zoo.random_model("llama", hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2)
    torch.manual_seed(0)
    windows = torch.randint(0, 256, (4, 32))
    cfg = AquaKVConfig(group_size=32)
    full = calibrate(m, windows, cfg, valid_nsamples=1, progress=False)
    solve, calls = P.RidgeAccumulator.solve, []

    def interrupted(self, *a, **k):  # Ctrl-C while fitting layer 3's key predictor
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return solve(self, *a, **k)

    monkeypatch.setattr(P.RidgeAccumulator, "solve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        calibrate(m, windows, cfg, valid_nsamples=1, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(P.RidgeAccumulator, "solve", solve)
    assert sorted(p.name for p in (tmp_path / "layers").glob("block_*")) == [
        "block_0001.safetensors", "block_0002.safetensors"
    ]  # fmt: skip
    again = calibrate(m, windows, cfg, valid_nsamples=1, out_dir=tmp_path, resume=True, progress=False)
    assert [r.resumed for r in again.layers] == [False, True, True, False]
    for L in (1, 2, 3):
        for a, b in zip((*full.predictors.key[L], *full.predictors.value[L]),
                        (*again.predictors.key[L], *again.predictors.value[L])):  # fmt: skip
            assert torch.equal(a, b)
    assert [r.value_rel_mse for r in again.layers] == [r.value_rel_mse for r in full.layers]
