"""Tests of the per-layer SpQR engine (spqr.engine) on small synthetic layers, CPU only.

W ~ N(0, 1) with 1% planted outliers (x8); the inputs X have correlated features whose scales
span 1.5 decades (anisotropic XᵀX) and one dead feature (always 0). Reference values come from
code written here: a straightforward column-by-column GPTQ, a loop-based leave-one-out, and
dequantization from the returned codes and statistics.
"""

from __future__ import annotations

import math

import pytest
import torch

from spqr import SpQRConfig, bits_per_parameter, quantize_weight
from spqr.engine import greedy_correlation_order, leave_one_out_reduction

DEAD = 5  # input feature that is always 0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The layers are tiny: intra-op threads only add overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_layer(out: int = 64, inp: int = 128, n: int = 512, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=gen, dtype=torch.float64)
    w.view(-1)[torch.randperm(out * inp, generator=gen)[: out * inp // 100]] *= 8
    q, _ = torch.linalg.qr(torch.randn(inp, inp, generator=gen, dtype=torch.float64))
    spread = torch.logspace(-1.5, 0, inp, dtype=torch.float64)
    feature = torch.exp(torch.randn(inp, generator=gen, dtype=torch.float64))
    x = (torch.randn(n, inp, generator=gen, dtype=torch.float64) * spread) @ q.T * feature
    x[:, DEAD] = 0
    return w, x.T @ x / n


@pytest.fixture(scope="module")
def layer():
    return make_layer()


def objective(w, w_hat, xtx) -> float:
    d = (w - w_hat).double()
    return torch.trace(d @ xtx @ d.T).item()


def reference_gptq(w, xtx, wbits, groupsize, percdamp, order):
    """Plain GPTQ in float64: one column at a time, each error applied to all later columns at once."""
    w, h = w.double().clone(), 2 * xtx.double()
    n = w.shape[1]
    perm = torch.argsort(h.diag(), descending=True, stable=True) if order == "act_order" else torch.arange(n)
    w, h = w[:, perm], h[perm][:, perm]
    dead = h.diag() == 0
    h += percdamp * h.diag().mean() * torch.eye(n, dtype=h.dtype)
    h[dead, dead] = 1
    w[:, dead] = 0
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    maxq = 2**wbits - 1
    codes = torch.zeros_like(w)
    for j in range(n):
        if j % groupsize == 0:
            lo, hi = w[:, j : j + groupsize].min(1).values, w[:, j : j + groupsize].max(1).values
            s, z = (hi - lo) / maxq, -lo / ((hi - lo) / maxq)
        codes[:, j] = torch.clamp(torch.round(w[:, j] / s + z), 0, maxq)
        deq = s * (codes[:, j] - z)
        e = (w[:, j] - deq) / u[j, j]
        w[:, j] = deq
        w[:, j + 1 :] -= torch.outer(e, u[j, j + 1 :])
    inv = torch.argsort(perm)
    return codes[:, inv], w[:, inv]


# ------------------------------------------------------------------------------ GPTQ special case
@pytest.mark.parametrize(
    "order,wbits,groupsize,blocksize",
    [("act_order", 3, 16, 32), ("identity", 4, 32, 128), ("act_order", 2, 128, 128), ("identity", 3, 8, 24)],
)
def test_no_outliers_fp16_stats_is_plain_gptq(layer, order, wbits, groupsize, blocksize):
    w, xtx = layer
    cfg = SpQRConfig(
        method="gptq",
        wbits=wbits,
        groupsize=groupsize,
        permutation_order=order,
        percdamp=0.1,
        blocksize=blocksize,
    )
    r = quantize_weight(w, xtx, cfg, dtype=torch.float64)
    codes, w_hat = reference_gptq(w, xtx, wbits, groupsize, 0.1, order)
    assert torch.equal(r.codes, codes.to(torch.uint8))
    torch.testing.assert_close(r.weight, w_hat, rtol=0, atol=1e-10)
    assert r.outlier_share == 0 and not r.outlier_mask.any()
    assert r.scale_qq is None and r.zero_qq is None
    assert r.loss == pytest.approx(objective(w, w_hat, xtx), rel=1e-9)


def test_spqr_without_outliers_or_second_level_is_gptq_at_its_grid(layer):
    """method="spqr" with tau = inf and fp16 statistics (no outliers, no second level) is plain GPTQ
    with SpQR's own grid: groups of 16, act-order, damping 1 (the README recipe), compared with the
    reference loop above (the outlier machinery must then leave every weight alone)."""
    w, xtx = layer
    cfg = SpQRConfig(outlier_threshold=math.inf, qq_scale_bits=16, qq_zero_bits=16)
    assert cfg.method == "spqr" and cfg.groupsize == 16 and cfg.percdamp == 1.0
    assert cfg.permutation_order == "act_order"
    r = quantize_weight(w, xtx, cfg, dtype=torch.float64)
    codes, w_hat = reference_gptq(w, xtx, cfg.wbits, 16, 1.0, "act_order")
    assert torch.equal(r.codes, codes.to(torch.uint8))
    torch.testing.assert_close(r.weight, w_hat, rtol=0, atol=1e-10)
    assert not r.outlier_mask.any() and r.scale_qq is None and r.zero_qq is None


def test_blocksize_does_not_change_the_result(layer):
    w, xtx = layer
    a, b = (
        quantize_weight(w, xtx, SpQRConfig(outlier_threshold=0.5, blocksize=bs), dtype=torch.float64)
        for bs in (16, 128)
    )
    assert torch.equal(a.codes, b.codes) and torch.equal(a.outlier_mask, b.outlier_mask)
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-10)


def test_huge_damping_approaches_grouped_rtn(layer):
    w, xtx = layer
    gptq = quantize_weight(w, xtx, SpQRConfig(method="gptq", permutation_order="identity", percdamp=1e6))
    w_dead = w.clone()
    w_dead[:, DEAD] = 0  # as GPTQ does with a dead column (it shares its group's statistics)
    rtn = quantize_weight(w_dead, None, SpQRConfig(method="rtn", groupsize=16))
    assert (gptq.codes == rtn.codes).double().mean().item() > 0.999
    assert rtn.loss is None and rtn.relative_loss is None
    damped = quantize_weight(w, xtx, SpQRConfig(method="gptq", permutation_order="identity", percdamp=0.01))
    assert (damped.codes == rtn.codes).double().mean().item() < 0.9  # GPTQ does move codes


# ------------------------------------------------------------------------------ permutation
@pytest.mark.parametrize("order", ["act_order", "identity"])
def test_permutation_is_undone(layer, order):
    w, xtx = layer
    cfg = SpQRConfig(outlier_threshold=0.5, permutation_order=order)
    r = quantize_weight(w, xtx, cfg)
    p = torch.randperm(w.shape[1], generator=torch.Generator().manual_seed(1))
    rp = quantize_weight(w[:, p], xtx[p][:, p], cfg)
    if order == "act_order":  # the same processing order: every column gets the same treatment
        assert not torch.equal(r.perm, torch.arange(w.shape[1]))
        assert torch.equal(rp.codes, r.codes[:, p]) and torch.equal(rp.outlier_mask, r.outlier_mask[:, p])
        torch.testing.assert_close(rp.weight, r.weight[:, p], rtol=0, atol=0)
    else:  # another order gives other groups, but still a good approximation of W in original order
        assert torch.equal(r.perm, torch.arange(w.shape[1]))
        assert rp.relative_loss < 0.02 and r.relative_loss < 0.02


def test_greedy_correlation_order_is_a_nearest_neighbour_chain(layer):
    w, _ = layer
    perm = greedy_correlation_order(w.float())
    n = w.shape[1]
    assert torch.equal(perm.sort().values, torch.arange(n)) and perm[0] == 0
    ranks = torch.empty_like(w)
    for j in range(n):  # Spearman: Pearson correlation of the within-column ranks
        ranks[w[:, j].argsort(), j] = torch.arange(w.shape[0], dtype=w.dtype)
    corr = torch.corrcoef(ranks.T)
    for i in range(1, n):
        rest = perm[i:]
        assert corr[perm[i - 1], perm[i]] >= corr[perm[i - 1], rest].max() - 1e-5
    r = quantize_weight(w, make_layer()[1], SpQRConfig(permutation_order="spearman"))
    assert torch.equal(r.perm, perm)


# ------------------------------------------------------------------------------ outliers
def test_outlier_share_falls_and_error_rises_with_tau(layer):
    w, xtx = layer
    results = [
        quantize_weight(w, xtx, SpQRConfig(outlier_threshold=t)) for t in (0.05, 0.2, 1.0, 4.0, math.inf)
    ]
    shares = [r.outlier_share for r in results]
    losses = [r.loss for r in results]
    assert all(a > b for a, b in zip(shares, shares[1:])) and shares[-1] == 0
    assert all(a < b for a, b in zip(losses, losses[1:]))
    for r in results:
        assert r.bits_per_parameter == pytest.approx(3.625 + 32 * r.outlier_share)


def test_outliers_catch_the_planted_weights(layer):
    w, xtx = layer
    r = quantize_weight(w, xtx, SpQRConfig(outlier_threshold=1.0))
    planted = w.abs() > 4.5  # N(0,1) weights times 8 (rarely a natural one)
    assert 0 < r.outlier_share < 0.01
    assert (r.outlier_mask & planted).sum() >= 0.5 * r.outlier_mask.sum()


def test_leave_one_out_matches_a_loop():
    gen = torch.Generator().manual_seed(3)
    group = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    group[2, 3] = 9.0
    d = torch.rand(8, generator=gen, dtype=torch.float64) + 0.5
    maxq = 7

    def error(x, dk):  # min-max quantization error of x, weighted by 1/dk
        s = (x.max() - x.min()) / maxq
        q = torch.clamp(torch.round((x - x.min()) / s), 0, maxq)
        return (((s * q + x.min()) - x) / dk).square().sum()

    expected = torch.zeros(5, 8, dtype=torch.float64)
    for o in range(5):
        for i in range(8):
            keep = torch.arange(8) != i
            expected[o, i] = error(group[o], d) - error(group[o, keep], d[keep])
    torch.testing.assert_close(leave_one_out_reduction(group, d, maxq), expected, rtol=1e-9, atol=1e-9)
    assert leave_one_out_reduction(group, d, maxq)[2].argmax() == 3


# ------------------------------------------------------------------------------ format of the result
def test_weight_is_rebuilt_from_codes_statistics_and_outliers(layer):
    w, xtx = layer
    cfg = SpQRConfig(wbits=4, outlier_threshold=0.5, qq_groupsize=8)
    r = quantize_weight(w, xtx, cfg)
    out, inp = w.shape
    groups = inp // cfg.groupsize
    assert r.codes.dtype == torch.uint8 and int(r.codes.max()) <= 15
    assert r.scale.shape == r.zero.shape == (out, groups)
    position = torch.empty(inp, dtype=torch.long)
    position[r.perm] = torch.arange(inp)
    for name, stat in (("scale", r.scale), ("zero", r.zero)):
        qq = getattr(r, f"{name}_qq")
        assert qq.codes.shape == (out, groups) and qq.scale.shape == qq.zero.shape == (out // 8, groups)
        assert int(qq.codes.max()) <= 7
        rows = torch.arange(out) // 8
        torch.testing.assert_close(
            stat, qq.scale[rows] * (qq.codes.float() - qq.zero[rows]), rtol=1e-6, atol=1e-7
        )
    for c in (0, 1, 17, inp - 1):
        g = position[c] // cfg.groupsize
        expected = r.scale[:, g] * (r.codes[:, c].float() - r.zero[:, g])
        m = r.outlier_mask[:, c]
        torch.testing.assert_close(r.weight[~m, c], expected[~m], rtol=0, atol=1e-6)
        assert torch.equal(r.codes[m, c].float(), torch.round(r.zero[m, g]).clamp(0, 15))
    assert torch.equal(r.outlier_values, r.weight[r.outlier_mask])
    torch.testing.assert_close(r.dequantize(), r.weight, rtol=0, atol=1e-6)
    assert r.loss == pytest.approx(objective(w, r.weight, xtx), rel=1e-6)
    assert r.relative_loss == pytest.approx(r.loss / objective(w, 0 * w, xtx))


def test_spqr_beats_gptq_with_fewer_bits(layer):
    w, xtx = layer
    spqr = quantize_weight(w, xtx, SpQRConfig(wbits=3, outlier_threshold=1.0))
    for groupsize in (16, 32):  # GPTQ 3-bit with fp16 statistics: 5 and 4 bits
        gptq = quantize_weight(w, xtx, SpQRConfig(method="gptq", wbits=3, groupsize=groupsize))
        assert spqr.bits_per_parameter < gptq.bits_per_parameter
        assert spqr.loss < 0.8 * gptq.loss


# ------------------------------------------------------------------------------ bits and errors
def test_bits_per_parameter_formula():
    assert bits_per_parameter(3, 16, 3, 3, 16) == 3.625  # 3 + 6/16 + 64/256
    assert bits_per_parameter(4, 16, 3, 3, 16, outlier_share=0.01) == pytest.approx(4.625 + 0.32)
    assert bits_per_parameter(4, 128, 16, 16) == 4.25  # fp16 statistics: no second level
    assert bits_per_parameter(4, 16, 3, 16, 16) == 4 + 3 / 16 + 32 / 256 + 1
    assert bits_per_parameter(3, 16, 3, 3, 16, sym=True) == 3 + 3 / 16 + 32 / 256
    assert bits_per_parameter(2, 8, 2, 4, 32) == 2 + 6 / 8 + 64 / 256
    assert SpQRConfig.from_preset("w4").bits_per_parameter(0.005) == pytest.approx(4.785)


def test_input_errors(layer):
    w, xtx = layer
    bad = w.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        quantize_weight(bad, xtx, SpQRConfig())
    with pytest.raises(ValueError, match="groupsize=48 must divide in_features=128"):
        quantize_weight(w, xtx, SpQRConfig(groupsize=48))
    with pytest.raises(ValueError, match="qq_groupsize=48 must divide out_features=64"):
        quantize_weight(w, xtx, SpQRConfig(qq_groupsize=48))
    with pytest.raises(ValueError, match="wbits"):
        quantize_weight(w, xtx, SpQRConfig(wbits=9))
    with pytest.raises(ValueError, match="xtx must be"):
        quantize_weight(w, xtx[:64, :64], SpQRConfig())
    with pytest.raises(ValueError, match="needs xtx"):
        quantize_weight(w, None, SpQRConfig())
    with pytest.raises(ValueError, match="positive definite"):
        quantize_weight(w, -torch.eye(128, dtype=torch.float64), SpQRConfig(percdamp=0.0))


def test_symmetric_and_rounded_zero_grids(layer):
    w, xtx = layer
    sym = quantize_weight(w, xtx, SpQRConfig(wbits=4, sym=True, outlier_threshold=1.0))
    assert torch.equal(sym.zero, torch.full_like(sym.zero, 8.0)) and sym.zero_qq is None
    assert sym.bits_per_parameter == pytest.approx(4 + 3 / 16 + 32 / 256 + 32 * sym.outlier_share)
    rounded = quantize_weight(w, xtx, SpQRConfig(method="gptq", round_zero=True))
    assert torch.equal(rounded.zero, rounded.zero.round())
    assert rounded.relative_loss < 0.05 and sym.relative_loss < 0.05
    half = quantize_weight(w.to(torch.bfloat16), xtx, SpQRConfig())  # any float input, computed in float32
    assert half.weight.dtype == torch.float32 and half.relative_loss < 0.02
