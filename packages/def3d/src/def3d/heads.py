r"""Loss heads behind one interface: ``channels``, ``loss(output, target)``, ``decode(output)``.

**hist** (DEF): :math:`B = 240` bins of width :math:`w = 1/240` on :math:`[0, 1]` plus 2 margin
bins per side, 244 logits. The target for a distance :math:`d \in [0, 1]` is a Gaussian
:math:`\mathcal N(d, \sigma^2)`, :math:`\sigma = w`, integrated over each bin and renormalised:

.. math:: q_b = \frac{\Phi((e_{b+1} - d)/\sigma) - \Phi((e_b - d)/\sigma)}{\sum_{b'} (\cdots)},

the loss is :math:`\mathrm{KL}(q \,\|\, \mathrm{softmax}(z))` and the prediction is
:math:`\hat d = \mathrm{clamp}(\sum_b \mathrm{softmax}(z)_b\, c_b, 0, 1)` with bin centres :math:`c_b`.

**mse** / **l1**: one output channel, the prediction itself (clamped to [0, 1] when decoding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["HistHead", "L1Head", "MSEHead", "make_head"]


class HistHead:
    channels = 244

    def __init__(self, bins: int = 240, margin: int = 2):
        self.bins, self.margin = bins, margin
        self.channels = bins + 2 * margin
        w = 1.0 / bins
        self.sigma = w
        self.edges = torch.arange(-margin, bins + margin + 1, dtype=torch.float64) * w
        self.centres = (self.edges[:-1] + self.edges[1:]) / 2

    def target(self, d: torch.Tensor) -> torch.Tensor:
        """The binned Gaussian ``[..., 244]`` (sums to 1 over the last axis)."""
        e = self.edges.to(d.device, torch.float64)
        cdf = 0.5 * (1 + torch.erf((e - d.double()[..., None]) / (self.sigma * math.sqrt(2))))
        q = cdf[..., 1:] - cdf[..., :-1]
        return (q / q.sum(-1, keepdim=True)).to(d.dtype if d.is_floating_point() else torch.float32)

    def loss(self, out: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """``out [..., 244]`` logits (channels last), ``d [...]`` targets in [0, 1]: mean KL per point."""
        logp = F.log_softmax(out.float(), -1)
        q = self.target(d.float())
        return (q * (torch.log(q.clamp_min(1e-12)) - logp)).sum(-1).mean()

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        c = self.centres.to(out.device, torch.float32)
        return (F.softmax(out.float(), -1) @ c).clamp(0, 1)


class MSEHead:
    channels = 1

    def loss(self, out, d):
        return F.mse_loss(out[..., 0].float(), d.float())

    def decode(self, out):
        return out[..., 0].float().clamp(0, 1)


class L1Head(MSEHead):
    def loss(self, out, d):
        return F.l1_loss(out[..., 0].float(), d.float())


def make_head(name: str):
    heads = {"hist": HistHead, "mse": MSEHead, "l1": L1Head}
    if name not in heads:
        raise ValueError(f"unknown head {name!r}: choose from {', '.join(heads)}")
    return heads[name]()
