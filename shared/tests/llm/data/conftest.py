"""Shared fixtures: the default tokenizer is trained once per session (~5 s) and saved."""

import pytest

from papercore.llm.data import train_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """Folder holding the default tokenizer (stdlib train split, 4096 tokens), saved with save_pretrained."""
    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from papercore.llm.data import load_tokenizer

    return load_tokenizer(tokenizer_dir)
