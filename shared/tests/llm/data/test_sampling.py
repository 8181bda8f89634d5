import importlib
import json

import pytest
import torch

from papercore.llm.data import (
    eval_windows,
    get_calibration_data,
    get_eval_stream,
    sample_windows,
    stdlib_corpus,
    subset_docs,
    token_stream,
)


def test_sample_windows_shapes_and_determinism():
    stream = torch.arange(1000)
    state = torch.random.get_rng_state()
    a = sample_windows(stream, nsamples=16, seqlen=32, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # local generator only
    assert a.shape == (16, 32) and a.dtype == torch.long
    assert torch.equal(a, sample_windows(stream, 16, 32, seed=0))
    assert not torch.equal(a, sample_windows(stream, 16, 32, seed=1))
    assert torch.all(a[:, 1:] - a[:, :-1] == 1)  # each row is a contiguous slice of the stream
    assert a[:, 0].min() >= 0 and a[:, 0].max() <= 1000 - 32 - 1  # room for one target token after


def test_sample_windows_too_short():
    assert sample_windows(torch.arange(33), 4, 32).shape == (4, 32)  # seqlen + 1 is enough
    with pytest.raises(ValueError, match=r"32 tokens, need at least seqlen \+ 1 = 33"):
        sample_windows(torch.arange(32), 4, 32)
    with pytest.raises(ValueError, match="1D"):
        sample_windows(torch.zeros(2, 50, dtype=torch.long), 1, 8)


def test_eval_windows_exact_and_non_overlapping():
    stream = torch.arange(103)
    w = eval_windows(stream, 10)
    assert w.shape == (10, 10)
    assert torch.equal(w.flatten(), stream[:100])  # consecutive, non-overlapping, tail dropped
    assert torch.equal(eval_windows(stream, 10, max_windows=3), stream[:30].view(3, 10))
    assert eval_windows(stream, 103).shape == (1, 103)
    with pytest.raises(ValueError, match="too short"):
        eval_windows(stream, 104)


def test_subset_docs():
    docs = [f"doc{i:02d}" for i in range(50)]  # 5 characters each
    assert subset_docs(docs, 10_000) == docs
    some = subset_docs(docs, 50, seed=3)
    assert len(some) == 10 and some == sorted(some) and some == subset_docs(docs, 50, seed=3)
    run = subset_docs(docs, 50, seed=3, contiguous=True)
    start = docs.index(run[0])
    assert run == docs[start : start + 10]


def test_token_stream_eos_and_joiner(tokenizer):
    docs = ["def f():\n    return 1\n", "", "x = 'é'\n"]
    ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
    eos = tokenizer.eos_token_id
    assert token_stream(docs, tokenizer).tolist() == ids[0] + [eos] + ids[2]  # empty docs skipped
    assert token_stream(docs, tokenizer, add_eos=False).tolist() == ids[0] + ids[2]
    joined = token_stream(docs, tokenizer, joiner="\n\n")
    assert joined.dtype == torch.long and joined.tolist() == tokenizer("\n\n".join(docs))["input_ids"]


def test_token_stream_needs_eos(tokenizer_dir):
    from papercore.llm.data import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    tok.eos_token = None
    with pytest.raises(ValueError, match="eos_token"):
        token_stream(["a", "b"], tok)


def test_calibration_from_stdlib_and_local(tokenizer, tmp_path):
    a = get_calibration_data("stdlib", tokenizer, nsamples=8, seqlen=64, seed=0, split="validation")
    assert a.shape == (8, 64) and a.dtype == torch.long
    assert torch.equal(a, get_calibration_data("stdlib", tokenizer, 8, 64, seed=0, split="valid"))
    b = get_calibration_data("stdlib", tokenizer, 8, 64, seed=0, split="train", max_chars=200_000)
    assert torch.equal(b, get_calibration_data("stdlib", tokenizer, 8, 64, seed=0, max_chars=200_000))

    path = tmp_path / "calib.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in stdlib_corpus("test")[:3]))
    c = get_calibration_data(path, tokenizer, 4, 32, seed=1)
    assert c.shape == (4, 32)
    with pytest.raises(ValueError, match="too short"):
        get_calibration_data(path, tokenizer, 4, 10**7, seed=1)


def test_eval_stream_stdlib(tokenizer):
    stream = get_eval_stream("stdlib", tokenizer)
    assert torch.equal(stream, token_stream(stdlib_corpus("test"), tokenizer))
    assert stream.numel() > 100_000


def test_eval_stream_follows_corpus_protocol(tokenizer, monkeypatch):
    sampling = importlib.import_module("papercore.llm.data.sampling")
    calls = []

    def fake_load_text(name, split, **kwargs):
        calls.append((name, split))
        return [f"doc {i}" for i in range(2000)]

    monkeypatch.setattr(sampling, "load_text", fake_load_text)
    stream = get_eval_stream("c4", tokenizer)  # first 1100 validation documents joined with " "
    assert calls == [("c4", "validation")]
    expected = tokenizer(" ".join(f"doc {i}" for i in range(1100)))["input_ids"]
    assert stream.tolist() == expected
    with pytest.raises(ValueError, match="no held-out split"):
        get_eval_stream("redpajama", tokenizer)


def test_token_streams_are_cached_by_content(tokenizer, tmp_path, monkeypatch):
    from papercore.llm.data import sampling

    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path))
    monkeypatch.setattr(sampling, "_STREAMS", {})
    docs = ["def f(x):\n    return x", "class A:\n    pass"]
    first = sampling.cached_token_stream(docs, tokenizer)
    assert torch.equal(first, sampling.token_stream(docs, tokenizer))
    assert len(list((tmp_path / "tokens").glob("*.safetensors"))) == 1
    first[0] = -1  # a caller writing into its copy does not touch the cache
    monkeypatch.setattr(sampling, "_STREAMS", {})  # a new process: read back from disk, no tokenizing
    monkeypatch.setattr(
        sampling, "token_stream", lambda *a, **k: (_ for _ in ()).throw(AssertionError("tokenized"))
    )
    again = sampling.cached_token_stream(docs, tokenizer)
    assert again[0] != -1 and torch.equal(again, sampling.cached_token_stream(docs, tokenizer))
    with pytest.raises(AssertionError, match="tokenized"):  # other text: another key
        sampling.cached_token_stream([*docs, "x = 1"], tokenizer)
