import pytest
import torch

from aqlm import QuantizedLinear
from papercore import zoo


def random_quantized(model, num_codebooks=2, nbits=4, group=8, seed=0):
    """Swap every decoder linear of ``model`` for a QuantizedLinear with random codes (format tests)."""
    gen = torch.Generator().manual_seed(seed)
    for name, mod in list(model.named_modules()):
        if isinstance(mod, torch.nn.Linear) and name != "lm_head":
            o, i = mod.out_features, mod.in_features
            q = QuantizedLinear.from_parts(
                torch.randint(0, 2**nbits, (o, i // group, num_codebooks), generator=gen),
                torch.randn(num_codebooks, 2**nbits, 1, group, generator=gen) * 0.1,
                torch.rand(o, 1, 1, 1, generator=gen) + 0.5,
                None if mod.bias is None else mod.bias.detach(),
            )
            model.set_submodule(name, q)
    return model


@pytest.fixture
def tiny_random_quantized():
    return random_quantized(zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2))
