"""wbar: Wasserstein Iterative Networks for continuous Wasserstein-2 barycentres (Korotin et al., NeurIPS 2022)."""

__version__ = "0.1.0"

from wbar.barycenter import Barycenter
from wbar.config import WINConfig, WINTrainConfig
from wbar.solver import fit
from wbar.suites import BarycenterProblem, location_scatter, nongaussian

__all__ = [
    "Barycenter",
    "BarycenterProblem",
    "WINConfig",
    "WINTrainConfig",
    "fit",
    "location_scatter",
    "nongaussian",
]
