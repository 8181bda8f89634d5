r"""Reconstruction losses of the autoencoders, differentiable in the predicted points.

* :func:`chamfer_loss`: the squared Chamfer distance (the matches from :func:`papercore.geometry.knn`
  carry no gradient; the matched distances do);
* :func:`emd_loss`: the EMD of a matching found by the certified auction
  (:func:`papercore.geometry.emd_auction`, relative error at most ``tol``), the gradient flowing
  through the matched distances, as with Fan et al.'s approximate-matching op.
"""

from __future__ import annotations

import torch

from papercore.geometry import emd_auction, knn


def _gather(y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(y, 1, idx[..., None].expand(-1, -1, y.shape[-1]))


def chamfer_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``mean_i min_j |p_i - t_j|^2 + mean_j min_i |p_i - t_j|^2``."""
    with torch.no_grad():
        i_pt = knn(pred, target, 1)[1][..., 0]
        i_tp = knn(target, pred, 1)[1][..., 0]
    d_pt = ((pred - _gather(target, i_pt)) ** 2).sum(-1).mean(1)
    d_tp = ((target - _gather(pred, i_tp)) ** 2).sum(-1).mean(1)
    return (d_pt + d_tp).mean()


def emd_loss(pred: torch.Tensor, target: torch.Tensor, tol: float = 1e-2) -> torch.Tensor:
    """Mean over the batch of the matched Euclidean distance per point (an auction matching within ``tol``)."""
    with torch.no_grad():
        a = emd_auction(pred.detach(), target, tol=tol).assignment.to(pred.device)
    return (pred - _gather(target, a)).norm(dim=-1).mean()
