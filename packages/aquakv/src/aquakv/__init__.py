"""AQUA-KV (arXiv 2501.19392): KV-cache compression with inter-layer linear predictors plus HIGGS
vector quantization of the residuals, stored as packed codes, with fused decode kernels.

* :class:`AquaKVConfig` / :class:`CalibrationConfig` -- the cache's and the calibration's options;
* :class:`HiggsQuantizer` -- Hadamard + Gaussian-optimal grid (grids generated in :mod:`aquakv.grids`);
* :func:`calibrate` / :class:`Predictors` -- closed-form ridge predictors, layer by layer;
* :class:`AquaKVCache` (alias ``Cache``) -- a transformers ``Cache``: packed chunks + buffer + sinks;
* :class:`KIVICache` -- the KIVI baseline in the same harness.
"""

__version__ = "0.1.0"

from aquakv.cache import AquaKVCache
from aquakv.calibrate import CalibrationResult, calibrate, calibration_windows
from aquakv.config import AquaKVConfig, CalibrationConfig, UnsupportedLayoutError, bytes_per_token
from aquakv.kivi import KIVICache
from aquakv.predictors import Predictors, fit_ridge
from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer

Cache = AquaKVCache

__all__ = [
    "AquaKVCache",
    "AquaKVConfig",
    "Cache",
    "CalibrationConfig",
    "CalibrationResult",
    "HiggsQuantizer",
    "IdentityQuantizer",
    "KIVICache",
    "Predictors",
    "UnsupportedLayoutError",
    "bytes_per_token",
    "calibrate",
    "calibration_windows",
    "fit_ridge",
]
