"""SpQR quantization of one linear layer: GPTQ with small groups, bilevel statistics and outliers.

For :math:`W \\in \\mathbb{R}^{d_{out} \\times d_{in}}` and the mean input covariance
:math:`\\Sigma = \\frac1T X^\\top X` (float64, from :mod:`papercore.llm.calib`), the objective is the
layer's output error :math:`\\operatorname{tr}(\\Delta W\\, \\Sigma\\, \\Delta W^\\top)` and GPTQ
works with :math:`H = 2\\Sigma` (the authors' convention; the factor only matters through the
damping, which is relative to :math:`\\overline{\\operatorname{diag} H}` anyway).

Steps (Dettmers et al. 2023, Alg. 1, and the authors' ``spqr_engine.py``):

1. order the input columns (identity, act-order = :math:`\\operatorname{diag} H` descending, or the
   greedy Spearman-correlation chain) and permute :math:`W` and :math:`H`;
2. dead columns (:math:`H_{ii} = 0`) get :math:`W_{:,i} = 0`; damping
   :math:`H \\mathrel{+}= \\lambda I` with :math:`\\lambda = \\text{percdamp} \\cdot
   \\overline{\\operatorname{diag} H}`, then :math:`H_{ii} = 1` on dead columns;
   :math:`U = \\operatorname{chol}(H^{-1})` (upper);
3. the outlier threshold is :math:`\\theta = \\tau \\cdot \\frac1{d_{in}} \\sum_j
   \\operatorname{Var}_o(W_{oj}) / U_{jj}^2` (a per-layer scale of the OBS error);
4. columns in order, in lazy blocks: at the start of each group of :math:`\\beta_1` columns, fit
   per-row min-max statistics on the *current* (error-compensated) weights, after replacing the
   weights that leave-one-out flags as likely outliers by the mean of the others; quantize the
   scales and zeros of :math:`\\beta_2` consecutive rows to a few bits (second level) and use the
   dequantized values; per column, :math:`q = \\operatorname{clamp}(\\lfloor w/s + z \\rceil, 0,
   2^b - 1)`, OBS error :math:`e = (w - s(q - z)) / U_{jj}`; weights with :math:`e^2 > \\theta`
   stay in floating point (error 0); the error is spread over the later columns,
   :math:`W_{:, j+1:} \\mathrel{-}= e\\, U_{j, j+1:}`.

Rows are processed together; the Python loop runs over columns only (no host syncs inside it).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from spqr.config import FP16_STATS, SpQRConfig

log = logging.getLogger(__name__)

EPS = 1e-9  # smallest scale divided by (as the authors): a zero scale reconstructs 0


@dataclass
class SecondLevel:
    """A first-level statistic quantized over :math:`\\beta_2` consecutive rows.

    ``stat[o, g] = scale[o // beta2, g] * (codes[o, g] - zero[o // beta2, g])``.

    Attributes
    ----------
    codes : uint8 ``[out, groups]``, in ``[0, 2^b)``.
    scale, zero : ``[out / beta2, groups]`` (counted as fp16 in the size; kept in the compute dtype).
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor


@dataclass
class SpQRResult:
    """One quantized linear layer.

    Group ``g`` of a row covers the *permuted* columns ``perm[g*beta1:(g+1)*beta1]``; every other
    tensor is in the original column order.

    Attributes
    ----------
    weight : ``[out, in]`` dequantized weight (compute dtype, float32 by default), outliers included:
        ``weight = where(outlier_mask, outlier value, scale * (codes - zero))``.
    codes : uint8 ``[out, in]``; at an outlier, the code of 0 (the value is replaced, not added).
    scale, zero : ``[out, groups]`` first-level statistics as used, i.e. after the second level.
    scale_qq, zero_qq : the second level of each statistic, or None when kept in fp16.
    outlier_mask : bool ``[out, in]``.
    outlier_values : ``[nnz]`` the outliers' values in row-major order of the mask (``weight[outlier_mask]``).
    perm : int64 ``[in]``: permuted column ``k`` is original column ``perm[k]``.
    outlier_share : fraction of weights kept as outliers.
    bits_per_parameter : :func:`spqr.config.bits_per_parameter` at this outlier share.
    error_threshold : :math:`\\theta`, the absolute threshold on :math:`e^2` (inf: no outliers).
    loss : :math:`\\operatorname{tr}(\\Delta W \\Sigma \\Delta W^\\top)` in float64 (None without XᵀX).
    relative_loss : ``loss`` / :math:`\\operatorname{tr}(W \\Sigma W^\\top)`.
    """

    weight: torch.Tensor
    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    scale_qq: SecondLevel | None
    zero_qq: SecondLevel | None
    outlier_mask: torch.Tensor
    outlier_values: torch.Tensor
    perm: torch.Tensor
    outlier_share: float
    bits_per_parameter: float
    error_threshold: float
    loss: float | None
    relative_loss: float | None
    config: SpQRConfig

    def dequantize(self) -> torch.Tensor:
        """Rebuild the weight from codes, statistics and outliers (the reference dequantization)."""
        group = torch.argsort(self.perm) // self.config.groupsize  # group of each original column
        w = self.scale[:, group] * (self.codes.to(self.scale.dtype) - self.zero[:, group])
        w[self.outlier_mask] = self.outlier_values
        return w


# ------------------------------------------------------------------------------ scalar grids
def fit_minmax(
    x: torch.Tensor, maxq: int, sym: bool = False, round_zero: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max grid of ``maxq + 1`` levels over the last dimension: ``scale, zero`` of shape ``x.shape[:-1]``.

    Asymmetric: :math:`s = (x_{max} - x_{min}) / q_{max}`, :math:`z = -x_{min} / s` (not rounded
    unless ``round_zero``), so :math:`x_{min}` and :math:`x_{max}` are exactly on the grid. A
    constant :math:`c` uses the range between 0 and :math:`c` (so it stays exact; :math:`s = 0`
    for :math:`c = 0`). Symmetric (GPTQ's convention): :math:`s = 2\\max|x| / q_{max}`,
    :math:`z = (q_{max} + 1)/2`.
    """
    if sym:
        scale = 2 * x.abs().amax(-1) / maxq
        return scale, torch.full_like(scale, (maxq + 1) / 2)
    xmin, xmax = x.amin(-1), x.amax(-1)
    flat = xmin == xmax
    xmin = torch.where(flat, xmin.clamp(max=0), xmin)
    xmax = torch.where(flat, xmax.clamp(min=0), xmax)
    scale = (xmax - xmin) / maxq
    zero = -xmin / scale.clamp_min(EPS)
    return scale, (zero.round() if round_zero else zero)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """:math:`\\operatorname{clamp}(\\lfloor x / s + z \\rceil, 0, q_{max})` (float codes, round half to even)."""
    return torch.round(x / scale.clamp_min(EPS) + zero).clamp_(0, maxq)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """:math:`s (q - z)`."""
    return scale * (q - zero)


def leave_one_out_reduction(
    group: torch.Tensor, d: torch.Tensor, maxq: int, sym: bool = False, round_zero: bool = False
) -> torch.Tensor:
    """How much the OBS-weighted error of each row's group falls when one weight is left out.

    For row :math:`o` and position :math:`i`, with :math:`Q` the min-max quantizer fitted on the
    given weights,

    .. math::

        r_{oi} = \\sum_k \\Big(\\frac{Q_{w_o}(w_{ok}) - w_{ok}}{d_k}\\Big)^2
               - \\sum_{k \\ne i} \\Big(\\frac{Q_{w_o \\setminus i}(w_{ok}) - w_{ok}}{d_k}\\Big)^2 ,

    the left-out weight being kept exactly (error 0). ``group`` is ``[rows, n]``, ``d`` the
    ``[n]`` diagonal of the inverse-Hessian Cholesky factor; returns ``[rows, n]``.
    """

    def err(x, s, z, dk):
        return ((dequantize(quantize(x, s, z, maxq), s, z) - x) / dk).square().sum(-1)

    rows, n = group.shape
    s, z = fit_minmax(group, maxq, sym, round_zero)
    base = err(group, s[:, None], z[:, None], d)[:, None]
    if n == 1:
        return base
    others = torch.arange(n, device=group.device).expand(n, n)
    others = others[~torch.eye(n, dtype=torch.bool, device=group.device)].view(n, n - 1)
    loo = group[:, others]  # [rows, n, n-1]: row o without weight i
    s, z = fit_minmax(loo, maxq, sym, round_zero)
    return base - err(loo, s[..., None], z[..., None], d[others])


# ------------------------------------------------------------------------------ column order
def greedy_correlation_order(weight: torch.Tensor) -> torch.Tensor:
    """The authors' ``spearman`` order: a greedy nearest-neighbour chain of input columns.

    Columns are compared by the Spearman correlation of their values over the output rows
    (cosine of centred ranks). The chain starts at column 0 and always appends the not yet used
    column most correlated with the last one. Ties go to the lowest column index.
    """
    ranks = weight.argsort(0).argsort(0).float()
    ranks -= ranks.mean(0)
    unit = ranks / ranks.norm(dim=0).clamp_min(EPS)
    sim = unit.T @ unit  # [in, in]
    n = sim.shape[0]
    used = torch.zeros(n, dtype=torch.bool, device=weight.device)
    last = torch.zeros(1, dtype=torch.long, device=weight.device)
    chain = [last]
    used[0] = True
    for _ in range(n - 1):  # index_* ops keep the choice on the device: no host sync per step
        last = sim.index_select(0, last).masked_fill_(used, -math.inf).argmax(1)
        used.index_fill_(0, last, True)
        chain.append(last)
    return torch.cat(chain)


def permutation(order: str, xtx: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
    """Column order ``perm`` (processing position ``k`` holds original column ``perm[k]``)."""
    if order == "identity":
        return torch.arange(weight.shape[1], device=weight.device)
    if order == "act_order":  # stable, so dead columns (all 0) keep their relative order
        return torch.argsort(torch.diagonal(xtx), descending=True, stable=True).to(weight.device)
    if order == "spearman":
        return greedy_correlation_order(weight)
    raise ValueError(f"permutation_order must be one of identity, act_order, spearman; got {order!r}")


# ------------------------------------------------------------------------------ statistics
def _second_level(stat: torch.Tensor, bits: int, rows: int) -> tuple[torch.Tensor, tuple]:
    """Min-max quantize a ``[out]`` statistic over tiles of ``rows`` rows; returns it dequantized."""
    tiles = stat.reshape(-1, rows)
    s, z = fp16_grid(*fit_minmax(tiles, 2**bits - 1))
    q = quantize(tiles, s[:, None], z[:, None], 2**bits - 1)
    return dequantize(q, s[:, None], z[:, None]).reshape(-1), (q.reshape(-1), s, z)


FP16_ZERO_MAX = 60000.0  # |zero| kept below the fp16 maximum (65504) by widening the grid


def fp16_grid(scale: torch.Tensor, zero: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Make a min-max grid exactly storable in fp16 (the second-level scale and zero of the format).

    The grid is widened first where :math:`|z| = |x_{min}| / s` would overflow fp16 (statistics of
    nearly equal values), a positive scale is kept at least the smallest fp16 subnormal, then both
    are rounded to fp16 (and returned in the input dtype). Values stay inside the (slightly
    wider, or rounded) grid up to clamping; the codes are computed with these rounded values, so
    the stored layer reproduces the engine's weights exactly. A widened grid reproduces nearly
    equal statistics to about fp16 precision (the fp16 rounding of a zero near 60000 is 32 steps).
    """
    xmin = -zero * scale
    wide = torch.maximum(scale, xmin.abs() / FP16_ZERO_MAX)
    wide = torch.where(scale > 0, wide.clamp_min(2.0**-24), wide)
    scale = wide.to(torch.float16).to(scale.dtype)
    zero = (-xmin / scale.clamp_min(EPS)).clamp(-FP16_ZERO_MAX, FP16_ZERO_MAX)
    return scale, zero.to(torch.float16).to(scale.dtype)


def _group_stats(group: torch.Tensor, d: torch.Tensor, threshold: float, cfg: SpQRConfig, maxq: int):
    """Statistics of one group (``[out, beta1]`` current weights): scale, zero, and their second levels."""
    if cfg.has_outliers and not cfg.simplified_outliers:
        # Fit the grid without the weights that will likely become outliers: replace them by the
        # mean of the row's others, so they stretch neither the min nor the max.
        likely = leave_one_out_reduction(group, d, maxq, cfg.sym, cfg.round_zero) > threshold
        keep = (~likely).to(group.dtype)
        mean = (group * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1)
        group = torch.where(likely, mean, group)
    scale, zero = fit_minmax(group, maxq, cfg.sym, cfg.round_zero)
    scale_qq = zero_qq = None
    if cfg.qq_scale_bits < FP16_STATS:
        scale, scale_qq = _second_level(scale, cfg.qq_scale_bits, cfg.qq_groupsize)
    if cfg.qq_zero_bits < FP16_STATS and not cfg.sym:
        zero, zero_qq = _second_level(zero, cfg.qq_zero_bits, cfg.qq_groupsize)
    return scale, zero, scale_qq, zero_qq


def _inverse_hessian_cholesky(h: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped :math:`U = \\operatorname{chol}(H^{-1})` (upper) of a permuted float64 ``H``, and the dead-column mask."""
    diag = h.diagonal()
    dead = diag == 0
    diag.add_(percdamp * diag.mean())
    diag.masked_fill_(dead, 1.0)  # dead columns: no signal, so any positive curvature will do
    chol, info = torch.linalg.cholesky_ex(h)
    if info.item() != 0:
        raise ValueError(
            f"H = 2 XᵀX + damping is not positive definite (percdamp={percdamp}): raise percdamp"
        )
    return torch.linalg.cholesky(torch.cholesky_inverse(chol), upper=True), dead


# ------------------------------------------------------------------------------ the engine
def _gptq(wt: torch.Tensor, u: torch.Tensor, threshold: float, cfg: SpQRConfig):
    """GPTQ over the rows of ``wt`` (``[in, out]``: row ``j`` is permuted column ``j``), in place.

    Returns the codes and outlier mask (both ``[in, out]``) and the per-group statistics; ``wt``
    ends holding the dequantized weight. The lazy block is a multiple of ``beta1``, so a group's
    statistics always see every earlier column's update (the result does not depend on it).
    """
    n, rows = wt.shape
    g, maxq = cfg.groupsize, 2**cfg.wbits - 1
    bs = -(-cfg.blocksize // g) * g
    outliers = cfg.has_outliers
    codes = torch.empty_like(wt)
    mask = torch.zeros(n, rows, dtype=torch.bool, device=wt.device)
    d = u.diagonal()
    stats = []
    for b0 in range(0, n, bs):
        b1 = min(b0 + bs, n)
        blk, ub = wt[b0:b1], u[b0:b1, b0:b1]  # views: rows of wt are contiguous columns of W
        err = torch.empty(b1 - b0, rows, dtype=wt.dtype, device=wt.device)
        for k in range(b1 - b0):
            if (b0 + k) % g == 0:
                stats.append(_group_stats(blk[k : k + g].T, d[b0 + k : b0 + k + g], threshold, cfg, maxq))
                scale, zero = stats[-1][:2]
                div = scale.clamp_min(EPS)
                code_of_zero = torch.round(zero).clamp_(0, maxq)
            w = blk[k]
            q = torch.round(w / div + zero).clamp_(0, maxq)
            deq = scale * (q - zero)
            e = (w - deq) / ub[k, k]
            if outliers:
                out = e.square() > threshold
                q = torch.where(out, code_of_zero, q)
                kept = w.to(torch.float16).to(w.dtype)  # outliers are stored in fp16
                deq = torch.where(out, kept, deq)
                e = torch.where(out, (w - kept) / ub[k, k], e)
                mask[b0 + k] = out
            codes[b0 + k] = q
            blk[k] = deq
            err[k] = e
            blk[k + 1 :].addr_(ub[k, k + 1 :], e, alpha=-1)
        wt[b1:].addmm_(u[b0:b1, b1:].T, err, alpha=-1)
    return codes, mask, stats


def _rtn(w: torch.Tensor, cfg: SpQRConfig):
    """Round to nearest on every group at once; returns ``[out, in]`` codes and dequantized weight, and stats."""
    rows, n = w.shape
    maxq = 2**cfg.wbits - 1
    groups = w.reshape(rows, n // cfg.groupsize, cfg.groupsize)
    scale, zero = fit_minmax(groups, maxq, cfg.sym, cfg.round_zero)
    q = quantize(groups, scale[..., None], zero[..., None], maxq)
    return q.reshape(rows, n), dequantize(q, scale[..., None], zero[..., None]).reshape(rows, n), scale, zero


def xtx_loss(weight: torch.Tensor, reconstruction: torch.Tensor, xtx: torch.Tensor) -> torch.Tensor:
    """:math:`\\operatorname{tr}((W - \\hat W) \\Sigma (W - \\hat W)^\\top)`, in ``xtx.dtype``."""
    delta = (weight - reconstruction).to(xtx.dtype)
    return ((delta @ xtx) * delta).sum()


def _check_inputs(weight: torch.Tensor, xtx: torch.Tensor | None, cfg: SpQRConfig, dtype: torch.dtype):
    if weight.ndim != 2:
        raise ValueError(
            f"weight must be a 2-D [out_features, in_features] tensor, got shape {tuple(weight.shape)}"
        )
    rows, n = weight.shape
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not torch.isfinite(weight).all():
        raise ValueError("weight has non-finite values (nan or inf)")
    if n % cfg.groupsize:
        raise ValueError(f"groupsize={cfg.groupsize} must divide in_features={n}")
    uses_qq = cfg.qq_scale_bits < FP16_STATS or (cfg.qq_zero_bits < FP16_STATS and not cfg.sym)
    if uses_qq and rows % cfg.qq_groupsize:
        raise ValueError(
            f"qq_groupsize={cfg.qq_groupsize} must divide out_features={rows} (or use 16-bit statistics)"
        )
    if xtx is None:
        if cfg.method != "rtn":
            raise ValueError(f"method={cfg.method!r} needs xtx (only rtn works without calibration data)")
        return
    if xtx.shape != (n, n):
        raise ValueError(f"xtx must be [in_features, in_features] = [{n}, {n}], got {tuple(xtx.shape)}")
    if not torch.isfinite(xtx).all():
        raise ValueError("xtx has non-finite values (nan or inf)")


@torch.no_grad()
def quantize_weight(
    weight: torch.Tensor, xtx: torch.Tensor | None, config: SpQRConfig, *, dtype: torch.dtype = torch.float32
) -> SpQRResult:
    """Quantize one linear weight with SpQR (or its GPTQ / RTN special cases).

    Parameters
    ----------
    weight : ``[out, in]`` weight, any float dtype, on the device to compute on.
    xtx : ``[in, in]`` mean :math:`X^\\top X` of the layer's inputs (float64 preferred); may be
        None only for ``method="rtn"`` (then no loss is reported).
    config : grid, outlier and GPTQ options.
    dtype : compute dtype of the weights (float32, or float64 for reference-exact results); the
        Hessian work (damping, Cholesky factorisations) is always in float64.
    """
    cfg = config
    _check_inputs(weight, xtx, cfg, dtype)
    t0 = time.perf_counter()
    rows, n = weight.shape
    w = weight.detach().to(dtype)
    if xtx is not None:
        xtx = xtx.to(w.device, torch.float64)
    perm = permutation(cfg.permutation_order, xtx, weight)
    qq = {}
    if cfg.method == "rtn":
        codes, deq, scale, zero = _rtn(w[:, perm], cfg)
        mask = torch.zeros(rows, n, dtype=torch.bool, device=w.device)
        threshold = math.inf
    else:
        h = xtx[perm][:, perm].mul_(2)
        u, dead = _inverse_hessian_cholesky(h, cfg.percdamp)
        del h
        u = u.to(dtype)
        wt = w[:, perm].T.contiguous()
        wt[dead] = 0
        threshold = math.inf
        if cfg.has_outliers:
            scale_of_errors = (wt.var(dim=1) / u.diagonal().square()).mean().item()
            threshold = cfg.outlier_threshold * scale_of_errors
        codes_t, mask_t, stats = _gptq(wt, u, threshold, cfg)
        codes, mask, deq = codes_t.T, mask_t.T, wt.T
        scale = torch.stack([s[0] for s in stats], 1)
        zero = torch.stack([s[1] for s in stats], 1)
        for i, name in ((2, "scale"), (3, "zero")):
            if stats[0][i] is not None:
                qq[name] = SecondLevel(*(torch.stack([s[i][j] for s in stats], 1) for j in range(3)))
                qq[name].codes = qq[name].codes.to(torch.uint8)
    inv = torch.argsort(perm)
    deq, codes, mask = deq[:, inv].contiguous(), codes[:, inv].to(torch.uint8), mask[:, inv].contiguous()
    share = mask.sum().item() / mask.numel()
    loss = relative = None
    if xtx is not None:
        loss = xtx_loss(weight, deq, xtx).item()
        base = xtx_loss(weight, torch.zeros_like(deq), xtx).item()
        relative = loss / base if base > 0 else 0.0
    log.debug(
        "spqr %s %dx%d: %.3f bits, outliers %.3f%%, relative loss %s, %.2f s",
        cfg.method,
        rows,
        n,
        cfg.bits_per_parameter(share),
        100 * share,
        relative,
        time.perf_counter() - t0,
    )
    return SpQRResult(
        weight=deq,
        codes=codes,
        scale=scale,
        zero=zero,
        scale_qq=qq.get("scale"),
        zero_qq=qq.get("zero"),
        outlier_mask=mask,
        outlier_values=deq[mask],
        perm=perm,
        outlier_share=share,
        bits_per_parameter=cfg.bits_per_parameter(share),
        error_threshold=threshold,
        loss=loss,
        relative_loss=relative,
        config=cfg,
    )
