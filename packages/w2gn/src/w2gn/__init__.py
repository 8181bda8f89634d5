"""W2GN: Wasserstein-2 Generative Networks (Korotin et al., ICLR 2021) and the W2 benchmark."""

__version__ = "0.1.0"

from w2gn.config import W2GNConfig, W2GNTrainConfig
from w2gn.map import W2Map
from w2gn.solver import fit

__all__ = ["W2GNConfig", "W2GNTrainConfig", "W2Map", "fit"]
