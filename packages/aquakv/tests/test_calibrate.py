import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from aquakv.cache import AquaKVCache
from aquakv.calibrate import calibrate, calibration_memory
from aquakv.config import AquaKVConfig, CalibrationConfig
from aquakv.evaluate import chunked_perplexity
from papercore.llm import zoo

HOLD1, HOLD2 = CalibrationConfig(valid_nsamples=1), CalibrationConfig(valid_nsamples=2)


@pytest.fixture(scope="module")
def tiny():
    return zoo.load("tiny")


def test_calibration_fits_predictors_and_resumes(tiny, tmp_path):
    m, tok = tiny
    torch.manual_seed(0)
    windows = torch.randint(0, 4096, (6, 64))
    cfg = AquaKVConfig(first_layer_bits=16)
    res = calibrate(m, windows, cfg, HOLD2, out_dir=tmp_path, progress=False)
    l1 = res.layers[1]
    assert l1.key_pred_rel_mse < 1 and l1.value_pred_rel_mse < 1  # the predictors explain part of K and V
    assert res.layers[0].key_rel_mse < 1e-5  # fp16 layer 0
    # Residual quantization beats quantizing the values directly (same grid).
    assert l1.value_rel_mse < 0.107
    again = calibrate(m, windows, cfg, HOLD2, out_dir=tmp_path, resume=True, progress=False)
    assert again.layers[1].resumed and torch.equal(again.predictors.key[1][0], res.predictors.key[1][0])
    with pytest.raises(ValueError, match="--resume"):
        calibrate(m, windows, cfg, HOLD2, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        calibrate(m, windows, AquaKVConfig(), HOLD2, out_dir=tmp_path, resume=True, progress=False)
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
    full = calibrate(m, windows, cfg, HOLD1, progress=False)
    solve, calls = P.RidgeAccumulator.solve, []

    def interrupted(self, *a, **k):  # Ctrl-C while fitting layer 3's key predictor
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return solve(self, *a, **k)

    monkeypatch.setattr(P.RidgeAccumulator, "solve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        calibrate(m, windows, cfg, HOLD1, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(P.RidgeAccumulator, "solve", solve)
    assert sorted(p.name for p in (tmp_path / "layers").glob("block_*")) == [
        "block_0001.safetensors", "block_0002.safetensors"
    ]  # fmt: skip
    again = calibrate(m, windows, cfg, HOLD1, out_dir=tmp_path, resume=True, progress=False)
    assert [r.resumed for r in again.layers] == [False, True, True, False]
    for L in (1, 2, 3):
        for a, b in zip((*full.predictors.key[L], *full.predictors.value[L]),
                        (*again.predictors.key[L], *again.predictors.value[L])):  # fmt: skip
            assert torch.equal(a, b)
    assert [r.value_rel_mse for r in again.layers] == [r.value_rel_mse for r in full.layers]


class _PeakBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages allocated (and still alive) while the mode is active: every
    op's outputs are seen here, and a storage is counted until it is freed."""

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = set(), 0, 0

    def _free(self, key, nbytes):
        self.live.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self.live:
                    self.live.add(key)
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


def test_calibration_memory_does_not_grow_with_the_number_of_windows():
    """Peak memory of calibration minus that of the bare layer-by-layer pass (the engine's
    per-window activations, plus the two reconstructed [L, C] rows per window any such calibration
    hands to the next layer) stays flat from 2 to 12 windows: the ridge sums, predictions and
    reconstructions are built one window at a time (before, every window's predictions and
    predictor inputs were alive at once: +4 [L, C] float32 tensors per window)."""
    from papercore.llm.calib import CalibConfig, run_calibration

    m = zoo.random_model("llama", hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=4)  # C = 64
    C, L = 64, 32
    cfg = AquaKVConfig(group_size=64, first_layer_bits=16)
    names = ("self_attn.k_proj", "self_attn.v_proj")
    state = {}

    def bare(ctx):  # keep two float32 [L, C] rows per window until the next layer
        state["prev"] = [[t.reshape(-1, C).float() + 0 for t in ctx.captured[n]] for n in names]

    extra, ref_peak = {}, {}
    for n in (2, 12):
        windows = torch.randint(0, 256, (n, L), generator=torch.Generator().manual_seed(0))
        with _PeakBytes() as ours:
            calibrate(m, windows, cfg, HOLD1, progress=False)
        with _PeakBytes() as ref:
            run_calibration(m, windows, bare, CalibConfig(collect_xtx=False, capture=names,
                                                          propagate="original", progress=False))  # fmt: skip
        assert ref.peak > 0 and ours.peak > ref.peak
        extra[n], ref_peak[n] = ours.peak - ref.peak, ref.peak
    window_rows = L * C * 4  # one float32 [L, C] tensor
    assert extra[12] - extra[2] < 10 * window_rows, extra  # less than one [L, C] tensor per added window
    # The computed per-window storage of calibration_memory (the README's numbers) is what the run holds.
    sizes = calibration_memory(3, 64, C, 1, L, dtype_bytes=4)
    per_window = sizes["block_activations"] + sizes["captured_kv"] + sizes["reconstructions"]
    assert abs((ref_peak[12] - ref_peak[2]) / 10 - per_window) < 0.05 * per_window, (ref_peak, per_window)
