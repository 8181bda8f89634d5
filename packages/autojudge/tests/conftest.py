import pytest
import torch

from papercore.llm import zoo

# The models here are tiny: a second intra-op thread only adds synchronisation, and on a loaded
# machine it costs far more (a lossless-decoding test took 194 s with two threads, 27 s with one).
torch.set_num_threads(1)


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


class ListTokenizer:
    """A stand-in tokenizer over ``n`` tokens: text is token ids separated by spaces."""

    eos_token_id = None
    chat_template = None

    def __init__(self, n: int = 64, eos: int | None = None):
        self.n, self.eos_token_id = n, eos

    def __len__(self):
        return self.n

    def get_vocab(self):
        return {str(i): i for i in range(self.n)}

    def __call__(self, text, add_special_tokens=True):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=[int(t) for t in text.split()])

    def decode(self, ids, skip_special_tokens=False):
        return " ".join(str(i) for i in ids)


@pytest.fixture
def list_tokenizer():
    return ListTokenizer
