"""SpQR: Sparse-Quantized Representation (Dettmers et al., ICLR 2024).

GPTQ with small groups (16 input columns) whose scales and zero points are themselves quantized
to 3 bits over 16 output rows, plus a sparse set of fp16 outlier weights chosen by their OBS
error. This release is the engine: :func:`spqr.engine.quantize_weight` on one linear layer.
"""

__version__ = "0.1.0"

from spqr.config import PRESETS, SpQRConfig, bits_per_parameter
from spqr.engine import SecondLevel, SpQRResult, quantize_weight

__all__ = ["PRESETS", "SecondLevel", "SpQRConfig", "SpQRResult", "bits_per_parameter", "quantize_weight"]
