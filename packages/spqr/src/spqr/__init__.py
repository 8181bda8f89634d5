"""SpQR: Sparse-Quantized Representation (Dettmers et al., ICLR 2024).

GPTQ with small groups (16 input columns) whose scales and zero points are themselves quantized
to 3 bits over 16 output rows, plus a sparse set of fp16 outlier weights chosen by their OBS
error. :func:`spqr.engine.quantize_weight` quantizes one linear layer,
:class:`spqr.quantized_linear.QuantizedLinear` stores it compactly, :func:`spqr.quantize.quantize_`
quantizes a model block by block (with resume) and :mod:`spqr.checkpoint` saves and loads it.
"""

__version__ = "0.1.0"

from spqr.config import PRESETS, SpQRConfig, bits_per_parameter
from spqr.engine import SecondLevel, SpQRResult, quantize_weight
from spqr.quantized_linear import QuantizedLinear

__all__ = [
    "PRESETS",
    "QuantizedLinear",
    "SecondLevel",
    "SpQRConfig",
    "SpQRResult",
    "bits_per_parameter",
    "quantize_weight",
]
