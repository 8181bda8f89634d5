"""Offline text corpus: the Python standard library's own ``.py`` sources.

Every Python installation ships with ~12 MB of real, varied, human-written text (code, comments and
documentation strings), so a corpus built from it needs no network and no download. The files are
those under ``sysconfig.get_paths()["stdlib"]`` ending in ``.py``, minus:

* third-party code: ``site-packages``/``dist-packages`` (pyenv and some distros put them inside the
  stdlib folder);
* test suites: any folder named ``test``, ``tests`` or ``idle_test`` (``test/``, ``ctypes/test``,
  ``lib2to3/tests``, ``idlelib/idle_test``, ...), which are large, repetitive and often contain
  deliberately malformed text;
* build-specific files whose content depends on how *this* interpreter was compiled:
  ``config-*`` folders and ``_sysconfigdata_*.py``; and ``__pycache__``.

**Split rule** (stable for a given Python version, independent of file-system order): let ``rel`` be
the file's path relative to the stdlib folder, in POSIX form (``"json/__init__.py"``), and
``b = int.from_bytes(sha256(rel.encode("utf-8")).digest()[:8], "big") % 100``. Then ``b < 90`` is
``train``, ``90 <= b < 95`` is ``validation`` and ``b >= 95`` is ``test``. Documents are returned one
per file, sorted by ``rel``. Whole files are split (never parts of a file), so no function body is
shared between train and test. On CPython 3.11.7 that is 656 / 41 / 35 files and 10.6 / 0.78 / 0.70
million characters.

Text is decoded with the encoding declared by the file (PEP 263; UTF-8 by default) and newlines are
normalised to ``"\\n"``. The source text includes the docstrings; :func:`stdlib_docstrings` gives the
documentation strings alone, via :mod:`ast`.
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import os
import platform
import sysconfig
import tokenize
from pathlib import Path

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
#: Split aliases accepted everywhere a split name is.
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}
#: Upper bounds (exclusive) of the hash bucket, in percent, for train and validation; the rest is test.
TRAIN_PCT, VALID_PCT = 90, 95

_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})


def normalize_split(split: str) -> str:
    """Canonical split name: ``"valid"``/``"val"``/``"dev"`` become ``"validation"``."""
    split = split.strip().lower()
    return SPLIT_ALIASES.get(split, split)


def stdlib_root() -> Path:
    """Folder holding this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(rel_path: str) -> str:
    """Split (``"train"``, ``"validation"`` or ``"test"``) of a file, from its relative POSIX path."""
    bucket = int.from_bytes(hashlib.sha256(rel_path.encode("utf-8")).digest()[:8], "big") % 100
    if bucket < TRAIN_PCT:
        return "train"
    return "validation" if bucket < VALID_PCT else "test"


def _list_files(root: Path) -> list[str]:
    """Relative POSIX paths of the corpus files under ``root``, in file-system order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Prune in place so os.walk does not descend into excluded folders at all.
        dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS and not d.startswith("config-")]
        for name in filenames:
            if name.endswith(".py") and not name.startswith("_sysconfigdata"):
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return found


def stdlib_files(split: str | None = None, *, root: str | os.PathLike | None = None) -> list[str]:
    """Sorted relative paths of the corpus files, optionally only those of one split.

    Parameters
    ----------
    split : str, optional
        ``"train"``, ``"validation"`` (or ``"valid"``) or ``"test"``; None for all files.
    root : path-like, optional
        Folder to scan instead of the interpreter's standard library (used by tests).
    """
    root = Path(root) if root is not None else stdlib_root()
    files = sorted(_list_files(root))  # sorted: independent of the file-system's listing order
    if split is None:
        return files
    split = normalize_split(split)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for the stdlib corpus; expected one of {SPLITS}")
    return [f for f in files if split_of(f) == split]


def _read_source(path: Path) -> str:
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    # "utf-8-sig" strips a BOM; replacement keeps a stray bad byte from failing the whole corpus.
    text = data.decode(encoding, errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def stdlib_corpus(split: str = "train", *, root: str | os.PathLike | None = None) -> list[str]:
    """Source texts of one split of the stdlib corpus, one document per file, sorted by path.

    Parameters
    ----------
    split : str
        ``"train"``, ``"validation"`` (or ``"valid"``) or ``"test"``.
    root : path-like, optional
        Folder to read instead of the interpreter's standard library.

    Returns
    -------
    list of str
        The documents; see the module docstring for the file selection and the split rule.
    """
    root = Path(root) if root is not None else stdlib_root()
    return [_read_source(root / rel) for rel in stdlib_files(split, root=root)]


def _docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # e.g. lib2to3 grammar files of another Python version
        return []
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = (ast.get_docstring(node, clean=True) for node in ast.walk(tree) if isinstance(node, nodes))
    return [d for d in docs if d]


def stdlib_docstrings(split: str = "train", *, root: str | os.PathLike | None = None) -> list[str]:
    """Documentation strings (module, class, function) of one split, in file then source order.

    A prose-only view of the same files as :func:`stdlib_corpus` (same split rule); parsing makes it
    slower (about 4 s for the train split on 2 cores).
    """
    out: list[str] = []
    for text in stdlib_corpus(split, root=root):
        out.extend(_docstrings(text))
    return out


def stdlib_corpus_info(*, root: str | os.PathLike | None = None) -> dict:
    """Sizes of the stdlib corpus: files and characters per split, plus the Python version.

    Returns
    -------
    dict
        ``{"python_version", "root", "rule", "splits": {split: {"files", "chars"}}}``. The split is
        stable for a given Python version; another version has other files, hence other splits.
    """
    root = Path(root) if root is not None else stdlib_root()
    splits = {}
    for split in SPLITS:
        docs = stdlib_corpus(split, root=root)
        splits[split] = {"files": len(docs), "chars": sum(map(len, docs))}
    return {
        "python_version": platform.python_version(),
        "root": str(root),
        "rule": f"sha256(relative posix path)[:8] big-endian % 100: <{TRAIN_PCT} train, "
        f"<{VALID_PCT} validation, else test",
        "splits": splits,
    }
