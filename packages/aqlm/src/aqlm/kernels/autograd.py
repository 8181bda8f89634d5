r"""Backward pass of :func:`aqlm.kernels.aqlm_linear` (fine-tuning codebooks and scales, adapters).

The forward runs the fast kernels. The backward goes straight through the dequantized weight
:math:`\hat W = \mathrm{dequantize}(b, C, s)` (codes are discrete and get no gradient):

.. math:: \frac{\partial L}{\partial x} = g_y \hat W, \qquad
          \frac{\partial L}{\partial \hat W} = \textstyle\sum_t g_{y,t}^T x_t, \qquad
          \frac{\partial L}{\partial \text{bias}} = \textstyle\sum_t g_{y,t},

with :math:`\hat W` for :math:`\partial L/\partial x` built by the fast dequantization, and the
gradients of ``codebooks`` and ``scales`` obtained by back-propagating
:math:`\partial L/\partial \hat W` through :func:`aqlm.kernels.reference.dequantize`.
"""

from __future__ import annotations

import torch

from aqlm.kernels import reference


class AQLMLinearFunction(torch.autograd.Function):
    """``aqlm_linear`` with gradients for ``x``, ``codebooks``, ``scales`` and ``bias``."""

    @staticmethod
    def forward(ctx, x, codes, codebooks, scales, bias, backend):
        from aqlm.kernels import linear_fast

        ctx.save_for_backward(x, codes, codebooks, scales)
        ctx.backend = backend
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return linear_fast(x, codes, codebooks, scales, bias, backend=backend)

    @staticmethod
    def backward(ctx, grad_y):
        from aqlm.kernels import dequantize_fast

        x, codes, codebooks, scales = ctx.saved_tensors
        need_x, _, need_cb, need_s, need_bias, _ = ctx.needs_input_grad
        grad_y2 = grad_y.reshape(-1, grad_y.shape[-1])
        grad_x = grad_cb = grad_s = grad_bias = None
        if need_x:
            w = dequantize_fast(codes, codebooks, scales, grad_y.dtype, backend=ctx.backend)
            grad_x = (grad_y2 @ w).reshape(x.shape).to(x.dtype)
        if need_cb or need_s:
            # In the wider of the activations' and the codebooks' dtypes: fp16 codebooks (the stored
            # format) trained from float32 activations get float32 sums, rounded once at the end.
            compute = torch.promote_types(torch.promote_types(codebooks.dtype, x.dtype), grad_y.dtype)
            x2 = x.reshape(-1, x.shape[-1])
            grad_w = grad_y2.T.to(compute) @ x2.to(compute)  # summed over tokens
            with torch.enable_grad():
                cb = codebooks.detach().to(compute).requires_grad_(need_cb)
                s = scales.detach().to(compute).requires_grad_(need_s)
                w = reference.dequantize(codes, cb, s)
                wanted = [t for t in (cb, s) if t.requires_grad]
                grads = iter(torch.autograd.grad(w, wanted, grad_w))
            grad_cb = next(grads).to(codebooks.dtype) if need_cb else None
            grad_s = next(grads).to(scales.dtype) if need_s else None
        if need_bias:
            grad_bias = grad_y2.sum(0).to(ctx.bias_dtype)
        return grad_x, None, grad_cb, grad_s, grad_bias, None
