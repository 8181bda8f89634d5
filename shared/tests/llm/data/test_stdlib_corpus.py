import hashlib
import importlib
import platform

import pytest

from papercore.llm.data import split_of, stdlib_corpus, stdlib_corpus_info, stdlib_docstrings, stdlib_files

# Pins the documented rule: bucket = int(sha256(relative posix path)[:8], big-endian) % 100;
# <90 train, <95 validation, else test. Changing the rule must fail this test.
GOLDEN = {
    "json/__init__.py": (12, "train"),
    "typing.py": (23, "train"),
    "asyncio/tasks.py": (73, "train"),
    "os.py": (92, "validation"),
    "re/_parser.py": (94, "validation"),
    "pathlib.py": (98, "test"),
    "inspect.py": (99, "test"),
}


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_golden_split_rule(rel):
    bucket, split = GOLDEN[rel]
    assert int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") % 100 == bucket
    assert split_of(rel) == split


def _make_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_file_selection(tmp_path):
    kept = ["a.py", "json/__init__.py", "email/mime/text.py", "testing_utils.py"]
    dropped = [
        "site-packages/pkg/mod.py",
        "dist-packages/mod.py",
        "test/test_os.py",
        "ctypes/test/test_x.py",
        "lib2to3/tests/data/x.py",
        "idlelib/idle_test/test_x.py",
        "config-3.11-x86_64-linux-gnu/python-config.py",
        "_sysconfigdata__linux_x86_64-linux-gnu.py",
        "__pycache__/a.py",
        "README.txt",
        "lib-dynload/x.so",
    ]
    _make_tree(tmp_path, {rel: "x = 1\n" for rel in kept + dropped})
    assert stdlib_files(root=tmp_path) == sorted(kept)
    by_split = {s: stdlib_files(s, root=tmp_path) for s in ("train", "validation", "test")}
    assert sorted(sum(by_split.values(), [])) == sorted(kept)
    assert stdlib_files("valid", root=tmp_path) == by_split["validation"]
    with pytest.raises(ValueError, match="unknown split"):
        stdlib_files("holdout", root=tmp_path)


def test_encoding_and_newlines(tmp_path):
    latin = "# -*- coding: latin-1 -*-\r\ns = 'caf\xe9'\r\n".encode("latin-1")
    _make_tree(tmp_path, {"m.py": latin})
    (doc,) = stdlib_corpus(split_of("m.py"), root=tmp_path)
    assert doc == "# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n"


def test_splits_disjoint_covering_and_stable():
    files = stdlib_files()
    splits = {s: stdlib_files(s) for s in ("train", "validation", "test")}
    assert all(splits.values())
    assert sorted(sum(splits.values(), [])) == files  # covering, and disjoint (no duplicates)
    assert len(set(files)) == len(files)
    assert {s: stdlib_files(s) for s in splits} == splits  # same result twice
    assert not any(
        part in {"test", "tests", "idle_test", "site-packages"} for f in files for part in f.split("/")
    )


def test_split_independent_of_listing_order(monkeypatch):
    expected = stdlib_files("test"), stdlib_corpus("test")
    # The package re-exports the function under the module's name, hence import_module.
    stdlib_module = importlib.import_module("papercore.llm.data.stdlib_corpus")
    original = stdlib_module._list_files
    monkeypatch.setattr(stdlib_module, "_list_files", lambda root: list(reversed(original(root))))
    assert (stdlib_files("test"), stdlib_corpus("test")) == expected


def test_info_and_docstrings(tmp_path):
    info = stdlib_corpus_info()
    assert info["python_version"] == platform.python_version()
    sizes = info["splits"]
    assert sum(s["files"] for s in sizes.values()) == len(stdlib_files())
    assert sizes["train"]["chars"] > 10 * sizes["test"]["chars"] > 0
    assert sizes["test"]["chars"] == sum(map(len, stdlib_corpus("test")))

    src = (
        '"""Module doc."""\n\nclass A:\n    """Class doc."""\n\n    def f(self):\n        """Method doc."""\n'
    )
    _make_tree(tmp_path, {"m.py": src, "broken.py": "def (:\n"})
    docs = stdlib_docstrings(split_of("m.py"), root=tmp_path)
    assert docs == ["Module doc.", "Class doc.", "Method doc."]
