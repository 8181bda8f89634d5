import pytest

from aqlm import AQLMConfig
from aqlm.quantize import random_quantize_
from papercore.llm import zoo


def random_quantized(model, num_codebooks=2, nbits=4, group=8, seed=0):
    """``model`` with every decoder linear swapped for a QuantizedLinear with random codes (format tests)."""
    cfg = AQLMConfig(num_codebooks=num_codebooks, nbits_per_codebook=nbits, in_group_size=group)
    return random_quantize_(model, cfg, seed=seed)


@pytest.fixture
def tiny_random_quantized():
    return random_quantized(zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2))
