import pytest
import torch

from aquakv.predictors import Predictors, RidgeAccumulator, fit_ridge, model_fingerprint
from aquakv.quantizer import HiggsQuantizer
from papercore.llm import zoo


def test_ridge_equals_lstsq_as_ridge_vanishes():
    torch.manual_seed(0)
    x, y = torch.randn(500, 12), torch.randn(500, 5)
    w, b = fit_ridge(x, y, percdamp=0.0)
    xa = torch.cat([x, torch.ones(500, 1)], 1).double()
    sol = torch.linalg.lstsq(xa, y.double()).solution
    assert torch.allclose(w.double(), sol[:12].T, atol=1e-4) and torch.allclose(
        b.double(), sol[12], atol=1e-4
    )


def test_ridge_recovers_affine_map_and_accumulates_in_chunks():
    torch.manual_seed(1)
    x = torch.randn(3000, 16)
    W, bias = torch.randn(8, 16), torch.randn(8)
    y = x @ W.T + bias
    acc = RidgeAccumulator(16, 8)
    for part in x.split(700):
        acc.update(part, part @ W.T + bias, chunk=256)
    w, b = acc.solve(1e-9)
    assert torch.allclose(w, W, atol=1e-3) and torch.allclose(b, bias, atol=1e-3)
    assert acc.count == 3000 and torch.allclose(fit_ridge(x, y, 1e-9)[0], W, atol=1e-3)
    with pytest.raises(ValueError, match="non-finite"):
        acc.update(torch.full((2, 16), float("nan")), torch.zeros(2, 8))


def test_residual_gain_at_equal_bits():
    torch.manual_seed(2)
    x = torch.randn(4000, 64)
    W = torch.randn(64, 64) / 8
    clean = x @ W.T
    noise = torch.randn_like(clean)
    rho = 0.2
    noise *= (rho * clean.pow(2).sum() / ((1 - rho) * noise.pow(2).sum())).sqrt()
    y = clean + noise
    q = HiggsQuantizer(64, 2, 16)
    w, b = fit_ridge(x, y)
    p = x @ w.T + b
    ratio = (p + q(y - p) - y).pow(2).sum() / (q(y) - y).pow(2).sum()
    assert ratio < 0.5 and abs(ratio - rho) < 0.1


def test_save_load_and_model_checks(tmp_path):
    m = zoo.random_model("llama", hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2)
    p = Predictors.zeros(3, 16, model_fingerprint(m))
    p.key[1] = (torch.randn(16, 16), torch.randn(16))
    p.save(tmp_path)
    q = Predictors.load(tmp_path)
    assert torch.equal(q.key[1][0], p.key[1][0]) and q.fingerprint == p.fingerprint
    q.check(m)
    other = zoo.random_model("llama", hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, seed=5)
    with pytest.raises(ValueError, match="another model"):
        q.check(other)
    wrong = zoo.random_model("llama", hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2)
    with pytest.raises(ValueError, match="2 layers"):
        q.check(wrong)
    with pytest.raises(FileNotFoundError):
        Predictors.load(tmp_path / "missing")
