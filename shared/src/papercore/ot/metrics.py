r"""How close a fitted transport map or generator is to the truth.

* :func:`l2_uvp`: the unexplained variance percentage of the W2 benchmark,
  :math:`\mathrm{L2\text{-}UVP}(\hat T) = 100 \cdot \mathbb{E}_{x \sim P}\|\hat T(x) - T^\star(x)\|^2 / \mathrm{Var}(Q)`
  (0 for the true map, 100 for the constant map :math:`x \mapsto \mathbb{E}Q`); the inverse direction
  divides by :math:`\mathrm{Var}(P)`;
* :func:`cos_similarity`: :math:`\langle T^\star - \mathrm{id}, \hat T - \mathrm{id}\rangle_{L^2(P)} /
  (\|T^\star - \mathrm{id}\| \|\hat T - \mathrm{id}\|)`;
* :func:`bw2_uvp`: :math:`100 \cdot W_2^2(N(\hat\mu, \hat\Sigma), N(\mu^\star, \Sigma^\star)) / \mathrm{Var}^\star`,
  the Gaussian-statistics error of generated samples against a known distribution (WIN's metric);
* :func:`sample_w2`: :math:`W_2^2` between two samples, exact by POT's ``emd2`` or entropic by
  Sinkhorn for large samples;
* :func:`frechet_distance`: the Fréchet distance between the Gaussian statistics of two sets of
  features, on pixels or in a feature network of the caller's choice. It is *not* "FID" unless the
  features are Inception-v3's pool features, which this project never downloads.
"""

from __future__ import annotations

import torch

from papercore.ot.gaussian import bures_w2

__all__ = ["bw2_uvp", "cos_similarity", "frechet_distance", "l2_uvp", "sample_w2", "total_variance"]


def total_variance(x: torch.Tensor) -> float:
    """:math:`\\mathbb{E}\\|x - \\mathbb{E}x\\|^2` of a sample (the trace of its covariance)."""
    x = x.double()
    return float(((x - x.mean(0)) ** 2).sum(1).mean())


def l2_uvp(predicted: torch.Tensor, true: torch.Tensor, variance: float) -> float:
    """``100 · mean ‖predicted − true‖² / variance`` (``variance``: the target's total variance)."""
    if predicted.shape != true.shape:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and true {tuple(true.shape)} images differ in shape"
        )
    return float(100 * ((predicted.double() - true.double()) ** 2).sum(1).mean() / variance)


def cos_similarity(x: torch.Tensor, predicted: torch.Tensor, true: torch.Tensor) -> float:
    """Cosine between the displacements ``T* − id`` and ``T̂ − id`` in L²(P), estimated on ``x``."""
    a, b = (true - x).double(), (predicted - x).double()
    num = (a * b).sum(1).mean()
    den = ((a * a).sum(1).mean() * (b * b).sum(1).mean()).sqrt()
    return float(num / den) if den > 0 else 0.0


def bw2_uvp(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """``100 · W2²(N(mean, cov) fitted to samples, N(mean, cov)) / tr(cov)``."""
    x = samples.double()
    m_hat, s_hat = x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    mean, cov = mean.to(x), cov.to(x)
    return 100 * bures_w2(m_hat, s_hat, mean, cov) / float(torch.trace(cov))


def sample_w2(
    x: torch.Tensor, y: torch.Tensor, method: str = "emd", reg: float = 0.05, max_iter: int = 1_000_000
) -> float:
    r""":math:`W_2^2` between the empirical measures of ``x`` and ``y`` (uniform weights).

    ``method="emd"``: exact (POT ``emd2``, network simplex; n up to a few thousand).
    ``method="sinkhorn"``: entropic OT with regularisation ``reg`` times the mean squared distance
    (POT ``sinkhorn2``, log-domain stabilised), an upper bound that tightens as ``reg`` → 0; runs on the
    tensors' device.
    """
    import ot

    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must be [n, d] and [m, d] samples, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if method == "emd":
        xa, ya = x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
        m = ot.dist(xa, ya)
        return float(ot.emd2(ot.unif(len(xa)), ot.unif(len(ya)), m, numItermax=max_iter))
    if method == "sinkhorn":
        xd, yd = x.detach().double(), y.detach().double()
        m = torch.cdist(xd, yd) ** 2
        a = torch.full((len(xd),), 1.0 / len(xd), dtype=torch.float64, device=xd.device)
        b = torch.full((len(yd),), 1.0 / len(yd), dtype=torch.float64, device=yd.device)
        plan = ot.sinkhorn(a, b, m, reg * float(m.mean()), method="sinkhorn_log", numItermax=10_000)
        return float((plan * m).sum())
    raise ValueError(f"method must be 'emd' or 'sinkhorn', got {method!r}")


def frechet_distance(x: torch.Tensor, y: torch.Tensor, features=None, batch: int = 512) -> float:
    r"""Fréchet distance :math:`\|\mu_x - \mu_y\|^2 + \operatorname{tr}(\Sigma_x + \Sigma_y - 2(\Sigma_x\Sigma_y)^{1/2})`
    between the Gaussian statistics of ``features(x)`` and ``features(y)`` (flattened pixels when
    ``features`` is None). Name the feature network when reporting it; it is not FID."""

    def stats(z):
        if features is not None:
            with torch.no_grad():
                z = torch.cat([features(c) for c in z.split(batch)])
        z = z.flatten(1).double()
        return z.mean(0), torch.cov(z.T).reshape(z.shape[1], z.shape[1])

    (m1, s1), (m2, s2) = stats(x), stats(y)
    return bures_w2(m1, s1, m2, s2)
