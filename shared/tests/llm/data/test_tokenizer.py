import subprocess
import sys

import pytest

from papercore.llm.data import SPECIAL_TOKENS, load_tokenizer, stdlib_corpus, train_tokenizer

UNICODE = "naïve café — 日本語 ✓ 🚀\tf(a , b) ;  x = ' .'\n\r\n\x00end"


def test_special_tokens_and_size(tokenizer):
    assert len(tokenizer) == 4096
    assert [tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token] == list(
        SPECIAL_TOKENS
    )
    assert [
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        tokenizer.unk_token_id,
    ] == [
        0,
        1,
        2,
        3,
    ]
    ids = tokenizer("import os")["input_ids"]  # no BOS/EOS added automatically
    assert ids == tokenizer("import os", add_special_tokens=False)["input_ids"]
    assert not set(ids) & {0, 1, 2, 3}


def test_round_trip(tokenizer):
    for text in [UNICODE, *stdlib_corpus("test")]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    # Special tokens survive as text.
    ids = tokenizer("a<|eos|>b")["input_ids"]
    assert tokenizer.eos_token_id in ids and tokenizer.decode(ids) == "a<|eos|>b"


def test_compresses_python(tokenizer):
    text = "\n".join(stdlib_corpus("test"))
    assert len(text) / len(tokenizer(text)["input_ids"]) > 3.0  # chars per token


def test_save_load_identical(tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    original = train_tokenizer(stdlib_corpus("validation"), vocab_size=512)
    original.save_pretrained(tmp_path)
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), load_tokenizer(tmp_path)):
        assert loaded.get_vocab() == original.get_vocab()
        assert loaded.eos_token_id == original.eos_token_id and loaded.pad_token_id == original.pad_token_id
        for text in (UNICODE, stdlib_corpus("test")[0]):
            ids = original(text)["input_ids"]
            assert loaded(text)["input_ids"] == ids
            assert loaded.decode(ids) == text


def test_training_is_deterministic():
    texts = stdlib_corpus("validation")
    a = train_tokenizer(texts, vocab_size=1024)
    b = train_tokenizer(list(texts), vocab_size=1024)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()  # same vocab and merges
    c = train_tokenizer(stdlib_corpus("train"), vocab_size=1024, max_chars=300_000, seed=0)
    d = train_tokenizer(stdlib_corpus("train"), vocab_size=1024, max_chars=300_000, seed=0)
    assert c.backend_tokenizer.to_str() == d.backend_tokenizer.to_str()


def test_training_is_deterministic_across_processes():
    # Rust hash maps are seeded per process: a tie broken by iteration order would show up here.
    code = (
        "from papercore.llm.data import stdlib_corpus, train_tokenizer; "
        "print(train_tokenizer(stdlib_corpus('validation'), vocab_size=1024).backend_tokenizer.to_str())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = train_tokenizer(stdlib_corpus("validation"), vocab_size=1024).backend_tokenizer.to_str()
    assert other.strip() == here


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="no training text"):
        train_tokenizer(["", ""])
