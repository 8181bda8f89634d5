r"""Closed-form optimal transport between Gaussians (the Bures–Wasserstein geometry).

For :math:`P = N(m_1, \Sigma_1)` and :math:`Q = N(m_2, \Sigma_2)` the optimal map for the quadratic
cost is affine,

.. math::

    T(x) = m_2 + A (x - m_1), \qquad
    A = \Sigma_1^{-1/2}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}\Sigma_1^{-1/2},

and :math:`W_2^2(P, Q) = \|m_1 - m_2\|^2 + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 -
2(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}\big)`. The barycentre of Gaussians with weights
:math:`\alpha_k` is Gaussian with the weighted mean and the covariance fixed point
:math:`\Sigma = \sum_k \alpha_k (\Sigma^{1/2}\Sigma_k\Sigma^{1/2})^{1/2}` (Álvarez-Esteban et al.),
iterated as :math:`\Sigma \leftarrow \Sigma^{-1/2}\big(\sum_k \alpha_k (\Sigma^{1/2}\Sigma_k\Sigma^{1/2})^{1/2}\big)^2\Sigma^{-1/2}`.

Everything is computed in float64 with symmetric eigendecompositions (``torch.linalg.eigh``), on
the tensors' device, so a GPU handles D in the thousands; ``backend="pot"`` computes the map and
the distance with POT's ``ot.gaussian`` instead (CPU, the reference the tests compare against).

Examples
--------
>>> import torch
>>> from papercore.ot.gaussian import bures_map, bures_w2
>>> A, b = bures_map(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
>>> A.diag().tolist(), b.tolist()
([2.0, 2.0], [1.0, 1.0])
>>> round(bures_w2(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2)), 6)  # |m|^2 + 2 (2-1)^2
4.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["bures_barycenter", "bures_map", "bures_w2", "sqrtm_psd"]


def _sym(a: torch.Tensor) -> torch.Tensor:
    return 0.5 * (a + a.transpose(-1, -2))


def sqrtm_psd(a: torch.Tensor, inverse: bool = False, eps: float = 0.0) -> torch.Tensor:
    """The symmetric square root (or inverse square root) of a PSD matrix, by ``eigh`` in float64."""
    w, v = torch.linalg.eigh(_sym(a.to(torch.float64)))
    w = w.clamp(min=eps)
    w = w.rsqrt() if inverse else w.sqrt()
    return _sym((v * w) @ v.T)


def bures_map(m1, s1, m2, s2, backend: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The optimal affine map :math:`x \mapsto A x + b` from :math:`N(m_1, \Sigma_1)` to :math:`N(m_2, \Sigma_2)`.

    Returns ``(A, b)`` in float64 (``A`` symmetric positive definite, ``b = m_2 - A m_1``).
    """
    if backend == "pot":
        import ot

        a, b = ot.gaussian.bures_wasserstein_mapping(
            *(t.detach().cpu().double().numpy() for t in (m1, m2, s1, s2))
        )
        return torch.from_numpy(a.T.copy()), torch.from_numpy(b.reshape(-1).copy())  # POT maps rows: x A + b
    m1, s1, m2, s2 = (t.to(torch.float64) for t in (m1, s1, m2, s2))
    r1 = sqrtm_psd(s1)
    r1_inv = sqrtm_psd(s1, inverse=True)
    a = _sym(r1_inv @ sqrtm_psd(r1 @ s2 @ r1) @ r1_inv)
    return a, m2 - a @ m1


def bures_w2(m1, s1, m2, s2, backend: str = "torch") -> float:
    r""":math:`W_2^2` between two Gaussians (the squared distance, not halved)."""
    if backend == "pot":
        import ot

        d = ot.gaussian.bures_wasserstein_distance(
            *(t.detach().cpu().double().numpy() for t in (m1, m2, s1, s2))
        )
        return float(d) ** 2
    m1, s1, m2, s2 = (t.to(torch.float64) for t in (m1, s1, m2, s2))
    r1 = sqrtm_psd(s1)
    cross = torch.linalg.eigvalsh(_sym(r1 @ s2 @ r1)).clamp(min=0).sqrt().sum()
    return float(((m1 - m2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * cross)


def bures_barycenter(
    means: Sequence[torch.Tensor] | torch.Tensor,
    covs: Sequence[torch.Tensor] | torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None = None,
    *,
    iters: int = 1000,
    tol: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the W2 barycentre of Gaussians (fixed-point iteration, float64)."""
    means = torch.stack([torch.as_tensor(m) for m in means]).to(torch.float64)
    covs = torch.stack([torch.as_tensor(c) for c in covs]).to(torch.float64)
    k = len(means)
    w = (
        torch.full((k,), 1.0 / k, dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float64)
    )
    if w.shape != (k,) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-8:
        raise ValueError(f"weights must be {k} non-negative numbers summing to 1, got {w.tolist()}")
    w = w.to(means.device)
    mean = (w[:, None] * means).sum(0)
    s = (w[:, None, None] * covs).sum(0)
    for _ in range(iters):
        r = sqrtm_psd(s)
        r_inv = sqrtm_psd(s, inverse=True)
        t = sum(w[i] * sqrtm_psd(r @ covs[i] @ r) for i in range(k))
        new = _sym(r_inv @ t @ t @ r_inv)
        if torch.linalg.matrix_norm(new - s) <= tol * torch.linalg.matrix_norm(s):
            return mean, new
        s = new
    return mean, s
