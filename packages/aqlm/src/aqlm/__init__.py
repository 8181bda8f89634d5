"""AQLM: Additive Quantization of Language Models (Egiazarian et al., ICML 2024).

Weights are cut into groups of ``g`` input weights; each group is the sum of ``M`` vectors, one
from each of ``M`` learned codebooks of ``2^B`` entries, times a per-row scale.

The verbs: :func:`quantize_` (calibrate a transformers model in place), :func:`distill_`
(end-to-end fine-tuning), :func:`save_quantized` / :func:`load_quantized` (the upstream AQLM
checkpoint format, which transformers loads too).
"""

__version__ = "1.2.0"

from aqlm.checkpoint import CheckpointError, load_quantized, save_quantized
from aqlm.config import SCHEMES, AQLMConfig, DistillConfig, bits_per_parameter, parse_scheme
from aqlm.finetune import distill_
from aqlm.quantize import model_bits, quantize_

__all__ = [
    "SCHEMES",
    "AQLMConfig",
    "CheckpointError",
    "DistillConfig",
    "QuantizedLinear",
    "bits_per_parameter",
    "distill_",
    "load_quantized",
    "model_bits",
    "parse_scheme",
    "quantize_",
    "save_quantized",
]


def __getattr__(name: str):
    # `QuantizedLinear` is served here so that transformers' AQLM integration, which starts with
    # `from aqlm import QuantizedLinear`, gets upstream checkpoints' parameter names understood
    # (aqlm._compat explains why).
    if name == "QuantizedLinear":
        from aqlm._compat import patch_transformers
        from aqlm.quantized_linear import QuantizedLinear

        patch_transformers()
        return QuantizedLinear
    raise AttributeError(f"module 'aqlm' has no attribute {name!r}")
