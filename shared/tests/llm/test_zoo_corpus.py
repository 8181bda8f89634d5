import dataclasses
import hashlib
import json
import sys

import pytest
import torch

from papercore.llm import zoo

UNIT = zoo.Recipe(
    "unit-corpus",
    vocab_size=260,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    seqlen=32,
    batch_size=4,
    steps=2,
    warmup=1,
    train_chars=20_000,
    eval_windows=2,
)


def _old_key(recipe):
    """The key formula before the corpus field existed (an independent computation)."""
    fields = {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe) if f.name != "corpus"}
    blob = json.dumps(
        {"recipe": fields, "format": zoo.ZOO_FORMAT, "python": sys.version_info[:2]}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def test_default_corpus_keeps_the_existing_keys():
    for r in zoo.RECIPES.values():
        assert r.corpus == "stdlib" and r.key() == _old_key(r)
    assert UNIT.replace(corpus="other").key() != UNIT.key()


def test_registered_corpus_trains_and_unknown_is_an_error(tmp_path):
    docs = ["x=1+2=3" * 20 for _ in range(200)]
    zoo.register_corpus("unit-test-corpus", lambda split: docs if split == "train" else docs[:20])
    m = zoo.train(UNIT.replace(corpus="unit-test-corpus"), tmp_path / "m", progress=False)
    assert m["recipe"]["corpus"] == "unit-test-corpus" and m["unigram_test_perplexity"] < 20
    with pytest.raises(ValueError, match="unknown zoo corpus"):
        zoo.train(UNIT.replace(corpus="missing"), tmp_path / "n", progress=False)
    with pytest.raises(ValueError, match="reserved"):
        zoo.register_corpus("stdlib", lambda split: [])
    assert torch.is_tensor(torch.zeros(1))
