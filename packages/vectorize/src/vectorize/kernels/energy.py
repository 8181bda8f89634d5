r"""Triton kernel of the weighted stroke energy and its gradient, with the torch reference beside it.

For rectangles ``rect [B, K, 5] = (cx, cy, theta, L, W)``, points ``(px, py) [P]`` and weights
``r [B, K, P]`` (residual times pixel weight, held fixed), it computes
``E[b, k] = sum_p r[b, k, p] phi_sigma(p; rect[b, k])`` and, in the same pass, the five partial
derivatives. With ``u, v`` the point's coordinates along and across the rectangle,
``A = erf((L/2 - u) a) + erf((L/2 + u) a)``, ``B`` likewise in ``v, W``, ``a = 1 / (sqrt 2 sigma)``,
``phi = A B / 4`` and ``g(z) = 2a / sqrt(pi) exp(-(a z)^2)``:

.. math::

    \partial_u A = g(L/2 + u) - g(L/2 - u), \quad \partial_L A = (g(L/2 - u) + g(L/2 + u)) / 2,

and ``d u / d(cx, cy, theta) = (-cos, -sin, v)``, ``d v / d(cx, cy, theta) = (sin, -cos, -u)``.
One program handles one rectangle and loops over the points in blocks. :func:`energy` is an
autograd function: Triton on a CUDA device (or under ``TRITON_INTERPRET=1``), else the reference.
"""

from __future__ import annotations

import math

import torch

from papercore.kernels.triton_guard import resolve_backend

_kernel = None


def _build():
    global _kernel
    if _kernel is not None:
        return _kernel
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(rect, px, py, r, out, P, a, gk, BLOCK: tl.constexpr):
        i = tl.program_id(0)  # rectangle b * K + k
        cx = tl.load(rect + i * 5 + 0)
        cy = tl.load(rect + i * 5 + 1)
        th = tl.load(rect + i * 5 + 2)
        L2 = tl.load(rect + i * 5 + 3) * 0.5
        W2 = tl.load(rect + i * 5 + 4) * 0.5
        c = tl.cos(th)
        s = tl.sin(th)
        e = tl.zeros([BLOCK], tl.float32)
        gcx = tl.zeros([BLOCK], tl.float32)
        gcy = tl.zeros([BLOCK], tl.float32)
        gth = tl.zeros([BLOCK], tl.float32)
        gL = tl.zeros([BLOCK], tl.float32)
        gW = tl.zeros([BLOCK], tl.float32)
        for p0 in range(0, P, BLOCK):
            offs = p0 + tl.arange(0, BLOCK)
            m = offs < P
            x = tl.load(px + offs, mask=m, other=0.0)
            y = tl.load(py + offs, mask=m, other=0.0)
            w = tl.load(r + i * P + offs, mask=m, other=0.0)
            dx = x - cx
            dy = y - cy
            u = dx * c + dy * s
            v = -dx * s + dy * c
            am, ap = (L2 - u) * a, (L2 + u) * a
            bm, bp = (W2 - v) * a, (W2 + v) * a
            A = tl.erf(am) + tl.erf(ap)
            B = tl.erf(bm) + tl.erf(bp)
            gam, gap = gk * tl.exp(-am * am), gk * tl.exp(-ap * ap)
            gbm, gbp = gk * tl.exp(-bm * bm), gk * tl.exp(-bp * bp)
            Au, AL = gap - gam, (gam + gap) * 0.5
            Bv, BW = gbp - gbm, (gbm + gbp) * 0.5
            wq = w * 0.25
            e += wq * A * B
            gcx += wq * (Au * -c * B + A * Bv * s)
            gcy += wq * (Au * -s * B + A * Bv * -c)
            gth += wq * (Au * v * B + A * Bv * -u)
            gL += wq * AL * B
            gW += wq * A * BW
        tl.store(out + i * 6 + 0, tl.sum(e, 0))
        tl.store(out + i * 6 + 1, tl.sum(gcx, 0))
        tl.store(out + i * 6 + 2, tl.sum(gcy, 0))
        tl.store(out + i * 6 + 3, tl.sum(gth, 0))
        tl.store(out + i * 6 + 4, tl.sum(gL, 0))
        tl.store(out + i * 6 + 5, tl.sum(gW, 0))

    _kernel = kernel
    return kernel


def energy_and_grad_triton(rect, px, py, r, sigma: float, block: int = 256):
    """``(E [B, K], dE/drect [B, K, 5])`` by the Triton kernel."""
    B, K, _ = rect.shape
    P = px.numel()
    rect_, r_ = rect.detach().float().contiguous(), r.detach().float().expand(B, K, P).contiguous()
    out = torch.empty(B * K, 6, device=rect.device, dtype=torch.float32)
    a = 1.0 / (math.sqrt(2.0) * sigma)
    if B * K:
        _build()[(B * K,)](rect_, px.float().contiguous(), py.float().contiguous(), r_, out, P, a,
                           2.0 * a / math.sqrt(math.pi), BLOCK=block)  # fmt: skip
    out = out.reshape(B, K, 6).to(rect.dtype)
    return out[..., 0], out[..., 1:]


def energy_and_grad_torch(rect, px, py, r, sigma: float):
    """The torch reference: the same sum, the gradient by autograd."""
    from vectorize.energy import unit_energy

    with torch.enable_grad():
        x = rect.detach().clone().requires_grad_(True)
        E = (unit_energy(x, px, py, sigma) * r).sum(-1)
        (g,) = torch.autograd.grad(E.sum(), x)
    return E.detach(), g


class _Energy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rect, px, py, r, sigma, backend):
        fn = energy_and_grad_triton if backend == "triton" else energy_and_grad_torch
        E, g = fn(rect, px, py, r, sigma)
        ctx.save_for_backward(g)
        return E

    @staticmethod
    def backward(ctx, gE):
        (g,) = ctx.saved_tensors
        return gE[..., None] * g, None, None, None, None, None


def energy(rect: torch.Tensor, px: torch.Tensor, py: torch.Tensor, r: torch.Tensor, sigma: float,
           backend: str = "auto") -> torch.Tensor:  # fmt: skip
    """``E [B, K] = sum_p r phi_sigma`` with its gradient with respect to ``rect`` (``r`` is held
    fixed). ``backend``: auto (Triton on CUDA, else torch), triton or torch."""
    return _Energy.apply(rect, px, py, r, sigma, resolve_backend(backend, rect.device))
