import pytest
import torch

from papercore.llm import zoo


@pytest.fixture(scope="session")
def random_pair():
    """A tiny random target and a different, smaller random draft sharing a 64-token vocabulary."""
    target = zoo.random_model("llama", seed=1, vocab_size=64, hidden_size=64, num_layers=2)
    draft = zoo.random_model(
        "qwen2", seed=2, vocab_size=64, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1
    )
    return target, draft


@pytest.fixture(scope="session")
def prompts():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 64, (int(n),), generator=g).tolist() for n in (1, 7, 20)]
