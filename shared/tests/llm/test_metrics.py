import math

import pytest
import torch
import torch.nn.functional as F

from papercore.llm import zoo
from papercore.llm.metrics import perplexity, unigram_perplexity


@pytest.fixture(scope="module")
def model():
    return zoo.random_model(
        "llama", seed=1, vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=1
    )


@pytest.fixture(scope="module")
def windows():
    return torch.randint(0, 64, (5, 24), generator=torch.Generator().manual_seed(0))


def test_perplexity_equals_direct_exp_mean_nll(model, windows):
    with torch.no_grad():
        logits = model(input_ids=windows, use_cache=False).logits.double()
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, 64), windows[:, 1:].reshape(-1))
    expected = math.exp(nll.item())
    for batch_size in (1, 2, 5):
        got = perplexity(model, windows, batch_size=batch_size, progress=False)
        assert abs(got - expected) / expected <= 1e-5


@pytest.mark.parametrize("chunk", [1, 5, 8, 24])
def test_chunked_feeding_through_cache_matches(model, windows, chunk):
    full = perplexity(model, windows, batch_size=2, progress=False)
    chunked = perplexity(model, windows, batch_size=2, chunk_size=chunk, progress=False)
    assert abs(chunked - full) / full <= 1e-4


def test_custom_cache_factory_is_used(model, windows):
    from transformers import DynamicCache

    made = []

    def factory():
        made.append(DynamicCache(config=model.config))
        return made[-1]

    perplexity(model, windows, batch_size=5, chunk_size=8, cache_factory=factory, progress=False)
    assert len(made) == 1 and made[0].get_seq_length() == windows.shape[1]


def test_bad_windows_rejected(model):
    with pytest.raises(ValueError, match="seqlen"):
        perplexity(model, torch.zeros(4, dtype=torch.long), progress=False)


def test_unigram_perplexity_of_uniform_stream():
    stream = torch.arange(10).repeat(100)
    windows = torch.arange(10).repeat(3, 1)
    assert abs(unigram_perplexity(stream, windows, 10) - 10.0) < 1e-9
