import gzip
import importlib
import json
import time

import pytest

from papercore.llm.data import CORPORA, CorpusNotFoundError, load_text, stdlib_corpus

DOCS = ["first document", "", "tröisième ✓ документ\nwith two lines"]


def test_txt_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("line one\nline two\n", encoding="utf-8")
    assert load_text(path) == ["line one\nline two\n"]
    assert load_text(str(path), "test") == load_text(path)  # a single file has a single split


def test_jsonl_and_json(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS))
    )
    assert load_text(tmp_path / "a.jsonl") == DOCS

    (tmp_path / "b.json").write_text(json.dumps([{"body": d} for d in DOCS]))
    assert load_text(tmp_path / "b.json", text_field="body") == DOCS
    with pytest.raises(KeyError, match="text_field"):
        load_text(tmp_path / "b.json")

    # c4-style: JSON lines in a gzipped .json file.
    with gzip.open(tmp_path / "c.json.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in DOCS)
    assert load_text(tmp_path / "c.json.gz") == DOCS
    assert load_text(tmp_path / "c.json.gz", limit=1) == DOCS[:1]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sentence": DOCS, "n": [1, 2, 3]}), tmp_path / "p.parquet")
    assert load_text(tmp_path / "p.parquet", text_field="sentence") == DOCS
    with pytest.raises(KeyError, match="sentence"):
        load_text(tmp_path / "p.parquet")


def test_folder_sorted_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("B2")
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "C"}) + "\n")
    (tmp_path / "b" / "1.txt").write_text("B1")
    (tmp_path / "notes.md").write_text("ignored")
    assert load_text(tmp_path) == ["A", "B1", "B2", "C"]


def test_folder_without_text_files(tmp_path):
    (tmp_path / "x.md").write_text("nothing readable")
    with pytest.raises(CorpusNotFoundError, match="no .txt"):
        load_text(tmp_path)


def test_folder_with_split_entries(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "tr"}) + "\n")
    (tmp_path / "valid.txt").write_text("va")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "x.txt").write_text("te")
    assert load_text(tmp_path, "train") == ["tr"]
    assert load_text(tmp_path, "validation") == ["va"]
    assert load_text(tmp_path, "test") == ["te"]

    only_train = tmp_path / "only"
    only_train.mkdir()
    (only_train / "train.txt").write_text("tr")
    with pytest.raises(CorpusNotFoundError, match="no entry for split 'test'"):
        load_text(only_train, "test")  # never falls back to mixing in the training text


def test_saved_dataset(tmp_path):
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": DOCS}),
            "test": datasets.Dataset.from_dict({"text": ["t"]}),
        }
    ).save_to_disk(tmp_path / "dd")
    assert load_text(tmp_path / "dd", "train") == DOCS
    assert load_text(tmp_path / "dd", "test") == ["t"]


def test_stdlib_by_name():
    assert load_text("stdlib", "valid") == stdlib_corpus("validation")
    assert load_text("STDLIB", "test", limit=2) == stdlib_corpus("test")[:2]


def test_unknown_name_or_path():
    with pytest.raises(CorpusNotFoundError, match="neither a known corpus"):
        load_text("no-such-corpus-or-file")


def test_registry():
    assert set(CORPORA) >= {"wikitext2", "ptb", "c4", "redpajama", "stdlib"}
    assert CORPORA["wikitext2"].joiner == "\n\n" and CORPORA["wikitext2"].config == "wikitext-2-raw-v1"
    assert CORPORA["ptb"].text_field == "sentence"
    assert CORPORA["c4"].data_files["validation"] == "en/c4-validation.00000-of-00008.json.gz"
    assert CORPORA["c4"].eval_split == "validation" and CORPORA["c4"].eval_docs == 1100
    with pytest.raises(ValueError, match="no split 'test'"):
        load_text("c4", "test")


def _flags():
    import datasets.config
    import huggingface_hub.constants

    return datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE


@pytest.mark.parametrize("name", ["wikitext2", "ptb", "c4", "redpajama"])
def test_offline_named_corpus_fails_fast(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    before = _flags()
    t0 = time.perf_counter()
    with pytest.raises(CorpusNotFoundError) as info:
        load_text(name, "train", cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 15
    message = str(info.value)
    assert message.startswith(name) and "local path" in message and "stdlib" in message
    assert _flags() == before  # the forced offline mode is undone


def test_unreachable_hub_without_offline_env(monkeypatch, tmp_path):
    for var in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    corpora_module = importlib.import_module("papercore.llm.data.corpora")
    monkeypatch.setattr(corpora_module, "_probe", lambda host, port: False)
    t0 = time.perf_counter()
    with pytest.raises(CorpusNotFoundError, match=r"wikitext2 \(Salesforce/wikitext\) could not be loaded"):
        load_text("wikitext2", "test", cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 15
