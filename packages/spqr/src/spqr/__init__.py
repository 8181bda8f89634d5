"""SpQR: Sparse-Quantized Representation (Dettmers et al., ICLR 2024).

GPTQ with small groups (16 input columns) whose scales and zero points are themselves quantized
to 3 bits over 16 output rows, plus a sparse set of fp16 outlier weights chosen by their OBS
error. :func:`spqr.engine.quantize_weight` quantizes one linear layer,
:class:`spqr.quantized_linear.QuantizedLinear` stores it compactly, :func:`spqr.quantize.quantize_`
quantizes a model block by block (with resume) and :mod:`spqr.checkpoint` saves and loads it (also through transformers'
``from_pretrained``, :mod:`spqr.hf_quantizer`).
"""

__version__ = "0.1.0"

from spqr import hf_quantizer  # noqa: E402,F401  registers "spqr_papers" with transformers' from_pretrained
from spqr.checkpoint import load_quantized, save_quantized  # noqa: E402
from spqr.config import PRESETS, SpQRConfig, bits_per_parameter
from spqr.engine import SecondLevel, SpQRResult, quantize_weight
from spqr.quantize import quantize_  # noqa: E402
from spqr.quantized_linear import QuantizedLinear

__all__ = [
    "PRESETS",
    "QuantizedLinear",
    "load_quantized",
    "quantize_",
    "save_quantized",
    "SecondLevel",
    "SpQRConfig",
    "SpQRResult",
    "bits_per_parameter",
    "quantize_weight",
]
