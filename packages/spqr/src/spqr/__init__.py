"""SpQR: Sparse-Quantized Representation (Dettmers et al., ICLR 2024).

GPTQ with small groups (16 input columns) whose scales and zero points are themselves quantized
to 3 bits over 16 output rows, plus a sparse set of fp16 outlier weights chosen by their OBS
error. :func:`quantize_weight` quantizes one linear layer, :class:`QuantizedLinear` stores it
compactly (in memory in the layout of its Triton kernels), :func:`quantize_` quantizes a model
block by block (with resume), :func:`save_quantized` / :func:`load_quantized` write and read it
(also through transformers' ``from_pretrained``, :mod:`spqr.hf_quantizer`). The options are one
:class:`SpQRConfig` (a :class:`papercore.config.Config`), with named :data:`PRESETS`.
"""

__version__ = "0.1.0"

from spqr import hf_quantizer  # noqa: E402,F401  registers "spqr_papers" with transformers' from_pretrained
from spqr.checkpoint import CheckpointError, check_checkpoint, load_quantized, save_quantized  # noqa: E402
from spqr.config import PRESETS, SpQRConfig, bits_per_parameter  # noqa: E402
from spqr.engine import SecondLevel, SpQRResult, quantize_weight  # noqa: E402
from spqr.quantize import QuantizationReport, model_bits, quantize_  # noqa: E402
from spqr.quantized_linear import QuantizedLinear  # noqa: E402

__all__ = [
    "PRESETS",
    "CheckpointError",
    "QuantizationReport",
    "QuantizedLinear",
    "SecondLevel",
    "SpQRConfig",
    "SpQRResult",
    "bits_per_parameter",
    "check_checkpoint",
    "load_quantized",
    "model_bits",
    "quantize_",
    "quantize_weight",
    "save_quantized",
]
