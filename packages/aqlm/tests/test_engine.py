"""Tests of the per-layer calibration engine (aqlm.engine) on small synthetic layers, CPU only.

The layer has a few planted large input columns and rows; XTX has eigenvalues spread over
1e-3..1e2 in a random basis, so an XTX-aware quantizer must visibly beat round-to-nearest.
Every loss is checked against an independent float64 computation through the reference dequantize.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aqlm.config import AQLMConfig, bits_per_parameter, parse_scheme
from aqlm.engine import (
    adam_steps,
    beam_search_pass,
    kmeans,
    quantize_weight,
    residual_kmeans_init,
    xtx_loss,
)
from aqlm.kernels.reference import dequantize

FAST = dict(max_epochs=8, steps_per_epoch=50, init_max_iter=30)


def make_layer(out: int, inp: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """W ~ N(0, 1) with three 8x input columns and one 4x row; XTX = Q diag(logspace(-3, 2)) Q^T."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=gen, dtype=torch.float64)
    w[:, torch.randperm(inp, generator=gen)[:3]] *= 8
    w[1] *= 4
    q, _ = torch.linalg.qr(torch.randn(inp, inp, generator=gen, dtype=torch.float64))
    eig = torch.logspace(-3, 2, inp, dtype=torch.float64)
    return w, (q * eig) @ q.T


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These layers are tiny: intra-op threads only add overhead (10x under a loaded CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def layer():
    return make_layer(32, 64)


def direct_loss(w, codes, codebooks, scales, xtx) -> float:
    """The objective from scratch: dense reconstruction in float64, then tr(dW H dW^T)."""
    return xtx_loss(w, dequantize(codes, codebooks.double(), scales.double()), xtx.double()).item()


def scaled_init(w, num_codebooks, nbits, g, og=1, iters=20):
    """Row-norm scales and residual k-means codes/codebooks of W / s (the engine's first two steps)."""
    s = w.reshape(w.shape[0] // og, -1).norm(dim=1)
    ws = (w.reshape(len(s), -1) / s[:, None]).reshape(w.shape)
    codes, codebooks = residual_kmeans_init(ws, num_codebooks, nbits, g, og, iters=iters, seed=1)
    return codes, codebooks, s.view(-1, 1, 1, 1)


def rtn(w: torch.Tensor, bits: int = 2, group: int = 16) -> torch.Tensor:
    """Round-to-nearest, asymmetric min-max grid per group of ``group`` input weights."""
    out, inp = w.shape
    x = w.reshape(out, inp // group, group)
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    step = ((hi - lo) / (2**bits - 1)).clamp_min(1e-12)
    return (((x - lo) / step).round().clamp(0, 2**bits - 1) * step + lo).reshape(out, inp)


# ----------------------------------------------------------------------------------- k-means
def test_kmeans_returns_a_lloyd_fixed_point_and_chunking_is_invisible():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(8, 4, generator=gen, dtype=torch.float64) * 10
    points = centers[torch.arange(400) % 8] + torch.randn(400, 4, generator=gen, dtype=torch.float64)
    centroids, codes = kmeans(points, 8, 100, seed=0)
    # converged: each point at its nearest centroid (dense distances), each centroid the mean of its points
    assert torch.equal(codes, torch.cdist(points, centroids).argmin(1))
    counts = torch.bincount(codes, minlength=8)
    assert (counts > 0).all()
    means = torch.zeros_like(centroids).index_add_(0, codes, points) / counts[:, None]
    assert torch.allclose(centroids, means, rtol=1e-12, atol=1e-12)
    assert (points - centroids[codes]).square().sum() < 0.05 * (points - points.mean(0)).square().sum()

    c2, a2 = kmeans(points, 8, 100, seed=0, chunk_elements=16)  # 2 points per chunk
    assert torch.equal(codes, a2) and torch.allclose(centroids, c2, rtol=1e-12, atol=1e-12)


def test_kmeans_reseeds_empty_clusters_and_subsamples():
    values = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0], [3.0, 3.0], [-2.0, 1.0]], dtype=torch.float64)
    points = values[torch.arange(200) % 5]  # only 5 distinct points: random init repeats some of them
    for seed in range(20):  # the random init leaves clusters empty; re-seeding must fix every case
        centroids, codes = kmeans(points, 5, 20, seed=seed)
        assert (points - centroids[codes]).abs().max() == 0, seed  # each distinct point has its centroid

    many = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0))
    centroids, codes = kmeans(many, 16, 10, seed=0, max_points=160)
    assert codes.shape == (5000,) and codes.max() < 16
    assert torch.equal(codes, ((many[:, None] - centroids[None]).square().sum(-1)).argmin(1))


def test_residual_kmeans_error_does_not_grow_with_codebooks(layer):
    w, _ = layer
    ws = w / w.norm(dim=1, keepdim=True)
    errors, first = [], None
    for m in range(1, 5):
        codes, codebooks = residual_kmeans_init(ws, m, 4, 4, iters=30, seed=0)
        assert codes.shape == (32, 16, m) and codebooks.shape == (m, 16, 1, 4)
        assert codes.dtype == torch.int64 and codes.min() >= 0 and codes.max() < 16
        first = codebooks[0] if first is None else first
        assert torch.equal(codebooks[0], first)  # codebook m does not depend on M
        errors.append(
            (ws - dequantize(codes, codebooks, torch.ones(32, 1, 1, 1, dtype=ws.dtype))).square().sum()
        )
    assert all(b <= a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


# ----------------------------------------------------------------------------------- beam search
@pytest.mark.parametrize(
    "scheme, beam, og",
    [("2x4g4", 1, 1), ("2x4g4", 4, 1), ("1x6g8", 1, 1), ("1x6g8", 4, 1), ("2x4g4", 1, 2), ("2x4g4", 3, 2)],
)
def test_beam_search_never_increases_loss_and_tracks_it_exactly(layer, scheme, beam, og):
    w, xtx = layer
    m, b, g = parse_scheme(scheme)
    codes, codebooks, scales = scaled_init(w, m, b, g, og)
    before = direct_loss(w, codes, codebooks, scales, xtx)
    new_codes, tracked = beam_search_pass(w, xtx, codes, codebooks, scales, beam_size=beam, seed=5)
    after = direct_loss(w, new_codes, codebooks, scales, xtx)
    assert new_codes.shape == codes.shape and new_codes.dtype == torch.int64
    assert after <= before * (1 + 1e-12)
    assert after < 0.9 * before  # k-means fits plain MSE; the XTX-aware search must find better codes
    assert abs(tracked - after) <= 1e-6 * after
    # chunking the candidate codes (3 codes per chunk) must not change anything
    chunked, tracked2 = beam_search_pass(
        w, xtx, codes, codebooks, scales, beam_size=beam, seed=5, chunk_elements=3 * beam * len(scales)
    )
    assert torch.equal(chunked, new_codes) and tracked2 == pytest.approx(tracked, rel=1e-12)


def test_wider_beam_is_not_worse_on_average(layer):
    w, xtx = layer
    codes, codebooks, scales = scaled_init(w, 2, 4, 4)
    losses = {
        k: sum(beam_search_pass(w, xtx, codes, codebooks, scales, beam_size=k, seed=s)[1] for s in range(3))
        for k in (1, 8)
    }
    assert losses[8] <= losses[1]


# ----------------------------------------------------------------------------------- Adam
def test_adam_steps_reduce_the_objective(layer):
    w, xtx = layer
    codes, codebooks, scales = scaled_init(w, 2, 4, 4)
    codebooks, scales = codebooks.clone().requires_grad_(), scales.clone().requires_grad_()
    before = direct_loss(w, codes, codebooks.detach(), scales.detach(), xtx)
    adam_steps(w, xtx, codes, codebooks, scales, steps=100, lr=1e-3)
    after = direct_loss(w, codes, codebooks.detach(), scales.detach(), xtx)
    assert after < 0.9 * before


# ----------------------------------------------------------------------------------- the engine
def test_quantize_weight_result_is_consistent(layer):
    w, xtx = layer
    r = quantize_weight(w, xtx, AQLMConfig.from_scheme("2x4g4", **FAST))
    assert r.codes.shape == (32, 16, 2) and r.codes.dtype == torch.int64
    assert r.codes.min() >= 0 and r.codes.max() < 16
    assert r.codebooks.shape == (2, 16, 1, 4) and r.codebooks.dtype == torch.float32
    assert r.scales.shape == (32, 1, 1, 1) and r.scales.dtype == torch.float32
    assert r.loss == pytest.approx(direct_loss(w, r.codes, r.codebooks, r.scales, xtx), rel=1e-9)
    assert r.relative_mse == pytest.approx(r.loss / xtx_loss(w, torch.zeros_like(w), xtx).item(), rel=1e-12)
    assert len(r.history) == r.epochs >= 1 and r.loss == pytest.approx(min(r.history), rel=1e-12)


def test_more_codebooks_or_bits_lower_the_error(layer):
    w, xtx = layer
    err = {
        s: quantize_weight(w, xtx, AQLMConfig.from_scheme(s, **FAST)).relative_mse
        for s in ("1x4g4", "2x4g4", "3x4g4", "1x6g4", "1x8g4")
    }
    assert err["3x4g4"] < err["2x4g4"] < err["1x4g4"]
    assert err["1x8g4"] < err["1x6g4"] < err["1x4g4"]


def test_aqlm_beats_rtn_at_fewer_bits():
    w, xtx = make_layer(64, 128, seed=1)
    config = AQLMConfig.from_scheme("2x4g4", **FAST)
    aqlm_bits = bits_per_parameter(64, 128, 2, 4, 4)  # codes + fp16 codebooks + fp16 scales
    rtn_bits = 2 + 32 / 16  # 2-bit codes + an fp16 scale and minimum per group of 16
    assert aqlm_bits < 2.5 < rtn_bits
    aqlm = quantize_weight(w, xtx, config).loss
    baseline = xtx_loss(w, rtn(w, 2, 16), xtx).item()
    assert aqlm < 0.5 * baseline, (aqlm, baseline)


def test_quantize_weight_is_deterministic(layer):
    w, xtx = layer
    config = AQLMConfig.from_scheme("2x4g4", max_epochs=3, steps_per_epoch=20, init_max_iter=20, beam_size=2)
    a, b = quantize_weight(w, xtx, config, seed=7), quantize_weight(w, xtx, config, seed=7)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codebooks, b.codebooks)
    assert torch.equal(a.scales, b.scales) and a.history == b.history
    c = quantize_weight(w, xtx, config, seed=8)
    assert not torch.equal(a.codes, c.codes)


def test_early_stopping_follows_relative_mse_tolerance(layer):
    w, xtx = layer
    base = AQLMConfig.from_scheme("1x4g4", steps_per_epoch=20, init_max_iter=20, max_epochs=30)
    assert quantize_weight(w, xtx, dataclasses.replace(base, relative_mse_tolerance=0.99)).epochs == 1
    tol = 0.02
    r = quantize_weight(w, xtx, dataclasses.replace(base, relative_mse_tolerance=tol))
    best = [min(r.history[: e + 1]) for e in range(r.epochs)]
    assert 3 <= r.epochs < 30
    for e in range(1, r.epochs - 1):  # (round 0 is compared with the k-means loss, not reported)
        assert r.history[e] / best[e - 1] <= 1 - tol  # rounds that did not stop improved enough
    assert r.history[-1] / best[-2] > 1 - tol  # the last one did not


def test_dead_inputs_are_handled(layer):
    w, xtx = layer
    xtx = xtx.clone()
    dead = torch.tensor([0, 5, 8, 9, 10, 11, 63])  # columns 8..11 are a whole group of 4
    xtx[dead], xtx[:, dead] = 0, 0
    config = AQLMConfig.from_scheme("2x4g4", **FAST)
    r = quantize_weight(w, xtx, config)
    assert torch.isfinite(r.codebooks).all() and torch.isfinite(r.scales).all()
    assert r.loss == pytest.approx(direct_loss(w, r.codes, r.codebooks, r.scales, xtx), rel=1e-9)
    assert r.loss < 0.5 * xtx_loss(w, rtn(w), xtx).item()
    # under no_grad too (the block pipeline calls it there), with the same result
    with torch.no_grad():
        assert quantize_weight(w, xtx, config).loss == r.loss
    # the fully dead group keeps a plain-MSE fit (its k-means codes), not arbitrary codes
    recon = dequantize(r.codes, r.codebooks.double(), r.scales.double())
    assert (recon[:, 8:12] - w[:, 8:12]).square().sum() < 0.5 * w[:, 8:12].square().sum()


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight_is_rejected(layer, bad):
    w, xtx = layer
    w = w.clone()
    w[3, 4] = bad
    with pytest.raises(ValueError, match="non-finite"):
        quantize_weight(w, xtx, AQLMConfig.from_scheme("1x4g4"))


def test_bad_shapes_are_rejected(layer):
    w, xtx = layer
    with pytest.raises(ValueError, match="in_group_size 5 does not divide in_features 64"):
        quantize_weight(w, xtx, AQLMConfig(num_codebooks=1, nbits_per_codebook=4, in_group_size=5))
    with pytest.raises(ValueError, match="out_group_size 3"):
        quantize_weight(
            w, xtx, AQLMConfig(num_codebooks=1, nbits_per_codebook=4, in_group_size=4, out_group_size=3)
        )
    with pytest.raises(ValueError, match="xtx must have shape"):
        quantize_weight(w, xtx[:32, :32], AQLMConfig.from_scheme("1x4g4"))
    with pytest.raises(ValueError, match="xtx has non-finite"):
        quantize_weight(w, xtx * float("nan"), AQLMConfig.from_scheme("1x4g4"))
