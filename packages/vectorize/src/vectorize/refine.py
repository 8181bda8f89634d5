"""Refinement: move and resize the primitives of many patches at once to fit their rasters.

Each iteration renders the current primitives with our rasteriser, takes the residual
``q = render - target`` (held fixed) and lowers the energy of every stroke piece

.. math::  E_k = \\sum_p \\omega_k(p)\\, q(p)\\, \\phi_k(p)   (see :mod:`vectorize.energy`),

so a stroke grows into ink it does not cover (``q < 0``) and shrinks away from paper it paints
(``q > 0``); ``omega_k = own_weight`` on the pixels the stroke covers, 1 elsewhere. Position
(centre and direction of a line, control points of a Bézier) and size (length and width) are
updated on alternate iterations (Adam). A collinearity term
``lambda sum_{overlapping i<j} exp(-beta (|cos theta_ij| - 1)^2) (1 - cos^2 theta_ij)`` aligns
overlapping near-collinear lines (``beta`` puts the kernel at ``1/e`` at 15°). Every
``reinit_every`` iterations collapsed primitives (width below 1/8 px) and free slots are
re-initialised on uncovered ink; every ``merge_every`` iterations overlapping collinear lines are
merged. Patches are processed in batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vectorize.config import RefineConfig
from vectorize.drawing import Drawing
from vectorize.energy import curve_rects, lines_to_rects, rects_to_lines, two_range_energy
from vectorize.raster import coverage

BETA = 1.0 / (1.0 - math.cos(math.radians(15))) ** 2


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def _pieces(lr: torch.Tensor, cv: torch.Tensor, k: int) -> torch.Tensor:
    """Rasteriser pieces ``[B, n + m k, 13]`` of lines (as rects) and curves (see ``raster.segments``)."""
    L = rects_to_lines(lr)
    t = _unit(L[..., 2:4] - L[..., 0:2])
    parts = [torch.cat([L, L[..., 0:2], t, L[..., 2:4], t], -1)]
    if cv.shape[1]:
        r = rects_to_lines(curve_rects(cv, k))  # [B, m, k, 5]
        caps = torch.cat([cv[..., 0:2], _unit(cv[..., 2:4] - cv[..., 0:2] + 1e-6 * (cv[..., 4:6] - cv[..., 0:2])),
                          cv[..., 4:6], _unit(cv[..., 4:6] - cv[..., 2:4] + 1e-6 * (cv[..., 4:6] - cv[..., 0:2]))], -1)  # fmt: skip
        B, m = cv.shape[:2]
        parts.append(torch.cat([r, caps[:, :, None].expand(B, m, k, 8)], -1).reshape(B, m * k, 13))
    return torch.cat(parts, 1)


def _pad(ds: list[Drawing], slots: int):
    n = max(max(len(d.lines) for d in ds), slots)
    m = max(len(d.curves) for d in ds)
    B = len(ds)
    lines, lm = np.zeros((B, n, 5)), np.zeros((B, n), bool)
    curves, cm = np.zeros((B, m, 7)), np.zeros((B, m), bool)
    for i, d in enumerate(ds):
        lines[i, : len(d.lines)], lm[i, : len(d.lines)] = d.lines, True
        curves[i, : len(d.curves)], cm[i, : len(d.curves)] = d.curves, True
    lines[~lm] = [0, 0, 1, 0, 0.01]
    return lines, lm, curves, cm


def _collinear(lr: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
    """The collinearity term over overlapping pairs of active lines."""
    th = lr[..., 2]
    cos = torch.cos(th[:, :, None] - th[:, None, :])
    with torch.no_grad():
        c = lr[..., :2]
        d = c[:, :, None] - c[:, None, :]
        u = torch.stack([torch.cos(th), torch.sin(th)], -1)[:, :, None]
        along = (d * u).sum(-1).abs()
        perp = (d[..., 0] * u[..., 1] - d[..., 1] * u[..., 0]).abs()
        L, w = lr[..., 3], lr[..., 4]
        near = (along < (L[:, :, None] + L[:, None, :]) / 2) & (perp < w[:, :, None] + w[:, None, :])
        near &= lm[:, :, None] & lm[:, None, :]
        near &= torch.triu(torch.ones_like(near[0]), 1)[None]
        kern = torch.exp(-BETA * (cos.abs() - 1) ** 2) * near
    return (kern * (1 - cos**2)).sum()


def _reinit(lr, lm, R, T, rng, min_width, stray):
    """Put collapsed lines (thinner than ``min_width`` or, ``stray``, mostly on paper) and free slots
    on uncovered ink (a short line along its main direction)."""
    with torch.no_grad():
        dead = (lr[..., 4] < min_width) | ~lm | stray
        gap = (T - R).cpu().numpy()
        for b in range(lr.shape[0]):
            slots = torch.nonzero(dead[b]).flatten().tolist()
            if not slots:
                continue
            un = gap[b] > 0.5
            for s in slots:
                ys, xs = np.nonzero(un)
                if len(ys) < 3:
                    lm[b, s] = False
                    lr[b, s, 4] = 0.01
                    continue
                i = rng.integers(len(ys))
                cy, cx = ys[i] + 0.5, xs[i] + 0.5
                near = (ys + 0.5 - cy) ** 2 + (xs + 0.5 - cx) ** 2 <= 36
                pts = np.stack([xs[near] + 0.5, ys[near] + 0.5], 1)
                mu = pts.mean(0)
                if len(pts) >= 3:
                    _, vec = np.linalg.eigh(np.cov((pts - mu).T))
                    v = vec[:, -1]
                else:
                    v = np.array([1.0, 0.0])
                t0, t1 = _extent(un, mu, v), _extent(un, mu, -v)
                p, q = mu - t1 * v, mu + t0 * v
                near = _near_segment(ys, xs, p, q, 3.0)
                width = float(np.clip(near.sum() / max(t0 + t1, 1.0), 1.0, 6.0))
                lr[b, s] = torch.tensor([(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, math.atan2(v[1], v[0]),
                                         max(t0 + t1, 2.0), width], dtype=lr.dtype)  # fmt: skip
                lm[b, s] = True
                un[ys[near], xs[near]] = False


def _extent(mask: np.ndarray, p: np.ndarray, v: np.ndarray, step: float = 0.5) -> float:
    """How far (px) ink continues from ``p`` along ``v`` (a one-pixel gap is tolerated)."""
    H, W = mask.shape
    t, miss = 0.0, 0
    while True:
        x, y = p + (t + step) * v
        i, j = int(y), int(x)
        if not (0 <= i < H and 0 <= j < W):
            return t
        miss = 0 if mask[i, j] else miss + 1
        if miss * step > 1.0:
            return max(t - 1.0, 0.0)
        t += step


def _near_segment(ys, xs, p, q, dist):
    e = q - p
    L2 = max(e @ e, 1e-9)
    pts = np.stack([xs + 0.5, ys + 0.5], 1)
    t = np.clip((pts - p) @ e / L2, 0, 1)
    return np.linalg.norm(pts - (p + t[:, None] * e), axis=1) <= dist


def _merge(lr, lm, max_angle=15.0):
    """Merge overlapping collinear lines of each patch into their common span (the wider width)."""
    with torch.no_grad():
        L = rects_to_lines(lr).cpu().numpy()
        m = lm.cpu().numpy()
        for b in range(len(L)):
            idx = list(np.nonzero(m[b])[0])
            for ii, i in enumerate(idx):
                if not m[b, i]:
                    continue
                for j in idx[ii + 1 :]:
                    if not m[b, j]:
                        continue
                    merged = merge_pair(L[b, i], L[b, j], max_angle, gap=2.0)
                    if merged is not None:
                        L[b, i], m[b, j] = merged, False
        lr.copy_(lines_to_rects(torch.as_tensor(L, dtype=lr.dtype)))
        lm.copy_(torch.as_tensor(m))


def merge_pair(a: np.ndarray, b: np.ndarray, max_angle: float, gap: float, max_dist: float | None = None):
    """The line spanning ``a`` and ``b`` if they are within ``max_angle`` degrees, their end points
    within ``max_dist`` (default: half the wider width + 0.5) of each other's line, and their spans
    overlap or leave a gap of at most ``gap`` px; else None."""
    ea, eb = a[2:4] - a[:2], b[2:4] - b[:2]
    la, lb = np.linalg.norm(ea), np.linalg.norm(eb)
    if la < 1e-6 or lb < 1e-6:
        return None
    cos = abs(ea @ eb) / (la * lb)
    if cos < math.cos(math.radians(max_angle)):
        return None
    u = (ea * la + (eb if ea @ eb >= 0 else -eb) * lb) / (la * la + lb * lb)  # length-weighted direction
    u /= np.linalg.norm(u)
    nrm = np.array([-u[1], u[0]])
    tol = max(a[4], b[4]) / 2 + 0.5 if max_dist is None else max_dist
    pts = np.stack([a[:2], a[2:4], b[:2], b[2:4]])
    o = (a[:2] * la + b[:2] * lb + a[2:4] * la + b[2:4] * lb) / (2 * (la + lb))
    off = (pts - o) @ nrm
    if np.ptp(off) > tol:
        return None
    t = (pts - o) @ u
    sa, sb = np.sort(t[:2]), np.sort(t[2:])
    if max(sa[0], sb[0]) - min(sa[1], sb[1]) > gap:
        return None
    p, q = o + t.min() * u, o + t.max() * u
    return np.array([*p, *q, max(a[4], b[4])])


def refine(targets: np.ndarray, drawings: list[Drawing], cfg: RefineConfig | None = None,
           device: str | torch.device = "cpu", seed: int = 0) -> list[Drawing]:  # fmt: skip
    """Refine the primitives of each patch against its ink map.

    Parameters
    ----------
    targets : [B, H, W] ink in [0, 1] (1 = ink)
    drawings : B drawings on those canvases (the network's output, or any initialisation)

    Returns the refined drawings (collapsed and tiny primitives removed).
    """
    cfg = cfg or RefineConfig()
    out: list[Drawing] = []
    for s in range(0, len(drawings), cfg.batch):
        out += _refine_batch(targets[s : s + cfg.batch], drawings[s : s + cfg.batch], cfg, device, seed + s)
    return out


def _refine_batch(targets, ds, cfg, device, seed):
    rng = np.random.default_rng(seed)
    H, W = targets.shape[1:]
    T = torch.as_tensor(np.asarray(targets), dtype=torch.float32, device=device)
    lines, lm, curves, cm = _pad(ds, cfg.slots)
    lr = lines_to_rects(torch.as_tensor(lines, dtype=torch.float32, device=device))
    lm = torch.as_tensor(lm, device=device)
    cv = torch.as_tensor(curves, dtype=torch.float32, device=device)
    cm = torch.as_tensor(cm, device=device)
    pos = torch.nn.Parameter(lr[..., :3].clone())
    size = torch.nn.Parameter(lr[..., 3:].clone())
    cpts = torch.nn.Parameter(cv[..., :6].clone(), requires_grad=cv.shape[1] > 0)
    cw = torch.nn.Parameter(cv[..., 6:].clone(), requires_grad=cv.shape[1] > 0)
    k = cfg.curve_pieces
    has_c = cv.shape[1] > 0
    opt_pos = torch.optim.Adam([pos, cpts] if has_c else [pos], lr=cfg.lr)
    opt_size = torch.optim.Adam([size, cw] if has_c else [size], lr=cfg.lr)
    yy, xx = torch.meshgrid(
        torch.arange(H, device=device) + 0.5, torch.arange(W, device=device) + 0.5, indexing="ij"
    )
    px, py = xx.reshape(-1).float(), yy.reshape(-1).float()
    active = torch.cat([lm, cm.repeat_interleave(k, 1)], 1)

    def current():
        return torch.cat([pos, size], -1), torch.cat([cpts, cw], -1)

    for it in range(cfg.iterations):
        lr_, cv_ = current()
        with torch.no_grad():
            cov = coverage(_pieces(lr_, cv_, k), px, py) * active[..., None]  # [B, S, P]
            R = cov.amax(1).reshape(-1, H, W) if cov.shape[1] else torch.zeros_like(T)
            q = R - T
            weight = 1 + (cfg.own_weight - 1) * (cov > 0.5).float()
        if cfg.reinit_every and it % cfg.reinit_every == 0:
            lr_now = lr_.detach().clone()
            n = lm.shape[1]
            own = cov[:, :n]
            prec = (own * T.reshape(len(T), 1, -1)).sum(-1) / own.sum(-1).clamp_min(1e-6)
            _reinit(lr_now, lm, R, T, rng, cfg.collapse_width, prec < 0.5)
            if cfg.merge_every and it and it % cfg.merge_every == 0:
                _merge(lr_now, lm, cfg.merge_angle)
            with torch.no_grad():
                pos.copy_(lr_now[..., :3])
                size.copy_(lr_now[..., 3:])
            active = torch.cat([lm, cm.repeat_interleave(k, 1)], 1)
            continue
        rects = torch.cat([lr_, curve_rects(cv_, k).flatten(1, 2)], 1)
        E = (two_range_energy(rects, q, weight) * active).sum()
        if cfg.collinear_weight > 0 and lr_.shape[1] > 1:
            E = E + cfg.collinear_weight * _collinear(lr_, lm)
        opt = opt_pos if it % 2 == 0 else opt_size
        opt.zero_grad(set_to_none=True)
        E.backward()
        opt.step()
        with torch.no_grad():
            size[..., 0].clamp_(min=0.0)
            size[..., 1].clamp_(min=0.01, max=float(max(H, W)))
            cw.clamp_(min=0.01, max=float(max(H, W)))
    lr_, cv_ = current()
    L = rects_to_lines(lr_.detach()).cpu().numpy()
    C = cv_.detach().cpu().numpy()
    lm, cm = lm.cpu().numpy(), cm.cpu().numpy()
    res = []
    for b in range(len(ds)):
        keep = (
            lm[b]
            & (L[b, :, 4] >= cfg.min_width)
            & (np.hypot(L[b, :, 2] - L[b, :, 0], L[b, :, 3] - L[b, :, 1]) >= cfg.min_length)
        )
        ck = cm[b] & (C[b, :, 6] >= cfg.min_width)
        res.append(Drawing(L[b][keep], C[b][ck], H, W))
    return res
