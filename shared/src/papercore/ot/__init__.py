"""papercore's optimal-transport toolkit (``pip install papercore[ot]``), shared by w2gn, wbar and neural-ot.

* :mod:`papercore.ot.samplers`: distributions with known OT (Gaussians, mixtures, the W2
  benchmark's ICNN-potential pairs, 2-D toys, a non-Gaussian barycentre construction), seeded, on
  CPU or GPU;
* :mod:`papercore.ot.gaussian`: closed-form Bures–Wasserstein maps, distances and barycentres
  (torch ``eigh``, or POT);
* :mod:`papercore.ot.metrics`: L2-UVP, cosine similarity, BW2-UVP, sample W2 (POT), Fréchet
  distance;
* :mod:`papercore.ot.icnn`: input-convex networks (dense and convolutional) with a closed-form
  gradient map, identity pretraining, MLP and ResNet maps and potentials;
* :mod:`papercore.ot.neural`: the max-min core of Neural Optimal Transport (map and potential
  losses, one NOT round through :class:`papercore.train.Trainer`).

POT (``ot``) is the discrete and Gaussian oracle; it is imported only by the functions that use it.
"""

from papercore.ot.gaussian import bures_barycenter, bures_map, bures_w2
from papercore.ot.icnn import MLP, ConvICNN, DenseICNN, ResNetMLP, gradient, pretrain_identity
from papercore.ot.metrics import bw2_uvp, cos_similarity, frechet_distance, l2_uvp, sample_w2, total_variance
from papercore.ot.neural import map_loss, not_round, potential_loss, quadratic_cost
from papercore.ot.samplers import (
    TOYS,
    ArraySampler,
    Gaussian,
    GaussianMixture,
    PushforwardSampler,
    Sampler,
    TransportProblem,
    gaussian_problem,
    icnn_problem,
    mix3tomix10,
    pairwise_barycenter,
    random_gaussian,
    random_mixture,
)

__all__ = [
    "TOYS",
    "MLP",
    "ArraySampler",
    "ConvICNN",
    "DenseICNN",
    "Gaussian",
    "GaussianMixture",
    "PushforwardSampler",
    "ResNetMLP",
    "Sampler",
    "TransportProblem",
    "bures_barycenter",
    "bures_map",
    "bures_w2",
    "bw2_uvp",
    "cos_similarity",
    "frechet_distance",
    "gaussian_problem",
    "gradient",
    "icnn_problem",
    "l2_uvp",
    "map_loss",
    "not_round",
    "potential_loss",
    "quadratic_cost",
    "mix3tomix10",
    "pairwise_barycenter",
    "pretrain_identity",
    "random_gaussian",
    "random_mixture",
    "sample_w2",
    "total_variance",
]
