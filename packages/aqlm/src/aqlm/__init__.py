"""AQLM: Additive Quantization of Language Models (Egiazarian et al., ICML 2024).

Weights are cut into groups of ``g`` input weights; each group is the sum of ``M`` vectors, one
from each of ``M`` learned codebooks of ``2^B`` entries, times a per-row scale.
"""

__version__ = "1.2.0"

from aqlm.config import SCHEMES, AQLMConfig, bits_per_parameter, parse_scheme
from aqlm.quantized_linear import QuantizedLinear

__all__ = ["SCHEMES", "AQLMConfig", "QuantizedLinear", "bits_per_parameter", "parse_scheme"]
