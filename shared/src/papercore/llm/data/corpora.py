"""Named text corpora (Hugging Face hub, with the usual quantization-paper protocols) and local files.

:func:`load_text` returns a list of documents for a corpus name, ``"stdlib"`` or a local path:

* ``wikitext2``: ``Salesforce/wikitext`` (formerly ``wikitext``), config ``wikitext-2-raw-v1``, one
  document per line of the raw file, empty lines included, because the GPTQ protocol joins them with
  ``"\\n\\n"`` (:attr:`CorpusSpec.joiner`).
* ``ptb``: ``ptb-text-only/ptb_text_only`` (formerly ``ptb_text_only``), config ``penn_treebank``,
  field ``sentence``, joined with ``" "``. The hub repository is a loading script, which
  ``datasets>=4`` refuses; pass local ``ptb.{train,valid,test}.txt`` files instead.
* ``c4``: ``allenai/c4``, English shard 0 only (``en/c4-train.00000-of-01024.json.gz`` and
  ``en/c4-validation.00000-of-00008.json.gz``), as in GPTQ/SparseGPT; the evaluation text is the first
  1100 validation documents joined with ``" "`` (then 256 windows, see :func:`~papercore.llm.data.eval_windows`).
* ``redpajama``: ``togethercomputer/RedPajama-Data-1T-Sample`` (the AQLM/SpQR calibration set), train
  only. Its repository also holds a loading script, so its ``*.jsonl`` files are read with the
  packaged ``json`` builder through ``hf://`` paths.
* ``stdlib``: the offline corpus of :mod:`papercore.llm.data.stdlib_corpus`.
* a local path: a ``.txt`` file (one document), ``.jsonl``/``.json`` (field ``text`` by default;
  ``.gz`` allowed), ``.parquet``, a folder saved by ``datasets.Dataset.save_to_disk``, or a folder of
  such files read recursively in sorted path order. A folder holding entries named after splits
  (``train.jsonl``, ``test/``, ``valid.txt``, ...) is split already: each split reads its own entry.

Hub loading never hangs when offline: if ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set, or the hub
host does not accept a TCP connection within 2 s, the call runs in offline mode (cached copies still
load) and failures become :class:`CorpusNotFoundError`, whose message says how to pass a local path.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from papercore.llm.data.stdlib_corpus import SPLITS, normalize_split, stdlib_corpus

logger = logging.getLogger(__name__)

#: File suffixes read from local folders (a ``.gz`` suffix is also allowed on text and JSON files).
LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")

_TRUE = {"1", "true", "yes", "on"}
_PROBE_TIMEOUT_S = 2.0


class CorpusNotFoundError(FileNotFoundError):
    """A corpus could not be found or loaded (unknown name, missing path, or hub unreachable)."""


@dataclass(frozen=True)
class CorpusSpec:
    """How to load one named corpus and how the usual protocols turn it into a token stream.

    Attributes
    ----------
    name : str
        Registry key.
    path : str
        First argument of ``datasets.load_dataset`` (a hub id or a packaged builder such as ``"json"``).
    config : str or None
        Dataset configuration name.
    text_field : str
        Column holding the text.
    splits : tuple of str
        Available splits (canonical names: ``train``, ``validation``, ``test``).
    data_files : mapping, optional
        Split -> file pattern, when only some files of the repository are used.
    joiner : str or None
        Protocol separator: the documents of a split are joined with it into one text before
        tokenizing (GPTQ perplexity protocol). None: documents are tokenized separately and separated
        by the EOS token.
    eval_split : str or None
        Split used for perplexity by default; None when the corpus has no held-out split.
    eval_docs : int or None
        Only the first ``eval_docs`` documents of the evaluation split are used (c4: 1100).
    large : bool
        Too large to tokenize whole for calibration: a seeded subset of documents is drawn first.
    source : str
        ``"hub"`` or ``"stdlib"``.
    description : str
        One line for listings.
    """

    name: str
    path: str
    config: str | None = None
    text_field: str = "text"
    splits: tuple[str, ...] = ("train", "validation", "test")
    data_files: Mapping[str, str] | None = None
    joiner: str | None = None
    eval_split: str | None = "test"
    eval_docs: int | None = None
    large: bool = False
    source: str = "hub"
    description: str = field(default="", compare=False)


_RP = "hf://datasets/togethercomputer/RedPajama-Data-1T-Sample/*.jsonl"

#: Registry of named corpora; keys are matched case-insensitively by :func:`load_text`.
CORPORA: dict[str, CorpusSpec] = {
    "wikitext2": CorpusSpec(
        "wikitext2",
        "Salesforce/wikitext",
        "wikitext-2-raw-v1",
        joiner="\n\n",
        description="WikiText-2 raw; GPTQ protocol: test lines joined with '\\n\\n'",
    ),
    "ptb": CorpusSpec(
        "ptb",
        "ptb-text-only/ptb_text_only",
        "penn_treebank",
        text_field="sentence",
        joiner=" ",
        description="Penn Treebank (text only); sentences joined with ' '",
    ),
    "c4": CorpusSpec(
        "c4",
        "allenai/c4",
        splits=("train", "validation"),
        data_files={
            "train": "en/c4-train.00000-of-01024.json.gz",
            "validation": "en/c4-validation.00000-of-00008.json.gz",
        },
        joiner=" ",
        eval_split="validation",
        eval_docs=1100,
        large=True,
        description="C4 English, shard 0; eval = first 1100 validation documents joined with ' '",
    ),
    "redpajama": CorpusSpec(
        "redpajama",
        "json",
        splits=("train",),
        data_files={"train": _RP},
        eval_split=None,
        large=True,
        description="RedPajama-Data-1T-Sample (AQLM/SpQR calibration set), train only",
    ),
    "stdlib": CorpusSpec(
        "stdlib",
        "stdlib",
        source="stdlib",
        description="offline: the Python standard library's .py sources, split by path hash (90/5/5)",
    ),
}


def corpus_spec(name_or_path: str | os.PathLike) -> CorpusSpec | None:
    """The registry entry for a corpus name (case-insensitive), or None for anything else."""
    return CORPORA.get(str(name_or_path).strip().lower())


def _local_hint() -> str:
    return (
        "pass a local path instead (a .txt/.jsonl/.json/.parquet file, a folder of them, or a folder "
        "saved by datasets' save_to_disk), or 'stdlib' for the built-in offline corpus"
    )


# --- hub access -------------------------------------------------------------------------------


def _offline_requested() -> bool:
    """True when the environment asks for offline mode (read now, not at import like the libraries)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


@functools.lru_cache(maxsize=4)
def _probe(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection within the probe timeout (DNS included)."""
    ok: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
                ok.append(True)
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which socket timeouts do not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_S)
    return bool(ok)


def hub_reachable() -> bool:
    """Whether the Hugging Face hub can be reached now (False in offline mode; True behind a proxy)."""
    if _offline_requested():
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a direct probe says nothing about a proxy; let the libraries try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return _probe(url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443))


@contextlib.contextmanager
def _forced_offline() -> Iterator[None]:
    """Switch ``datasets`` and ``huggingface_hub`` to offline mode for the duration of the block.

    Both libraries read the environment once, at import, so setting the variables now would not be
    seen; their module-level flags are what they consult on each call.
    """
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, FileNotFoundError, HTTP errors
    with contextlib.suppress(ImportError):
        from huggingface_hub.errors import EntryNotFoundError

        errors.append(EntryNotFoundError)
    with contextlib.suppress(ImportError):
        import httpx

        errors.append(httpx.HTTPError)
    return tuple(errors)


def _load_hub(spec: CorpusSpec, split: str, text_field: str, limit: int | None, cache_dir) -> list[str]:
    try:
        import datasets
    except ImportError as e:  # the [llm] extra is not installed
        raise CorpusNotFoundError(
            f"{spec.name} needs the 'datasets' package (pip install 'papercore[llm]'), or {_local_hint()}"
        ) from e
    kwargs = {"data_files": {split: spec.data_files[split]}} if spec.data_files else {}
    hub_split = split if limit is None else f"{split}[:{limit}]"
    offline = not hub_reachable()
    where = "the local Hugging Face cache (offline)" if offline else "the Hugging Face hub"
    logger.info("loading %s/%s from %s", spec.name, split, where)
    try:
        with _forced_offline() if offline else contextlib.nullcontext():
            ds = datasets.load_dataset(spec.path, spec.config, split=hub_split, cache_dir=cache_dir, **kwargs)
    except _hub_errors() + (RuntimeError,) as e:
        if isinstance(e, RuntimeError) and "script" not in str(e):
            raise  # a real bug, not a missing or script-only dataset
        reason = "offline, and not in the local cache" if offline else f"{type(e).__name__}: {e}"
        source = next(iter(spec.data_files.values())) if spec.path == "json" else spec.path
        raise CorpusNotFoundError(
            f"{spec.name} ({source}) could not be loaded from the Hugging Face hub ({reason}): {_local_hint()}"
        ) from e
    if text_field not in ds.column_names:
        raise KeyError(f"{spec.name} has no field {text_field!r}; fields: {ds.column_names}")
    return [t if t is not None else "" for t in ds[text_field]]


# --- local files ------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    """Format suffix, looking through a trailing ``.gz``."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        return suffixes[-2] if len(suffixes) > 1 else ""
    return path.suffix


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _field(record, text_field: str, path: Path) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, Mapping) and text_field in record:
        return record[text_field] or ""
    raise KeyError(f"{path}: record without field {text_field!r} (pass text_field=...)")


def _read_json(path: Path, text_field: str) -> list[str]:
    with _open_text(path) as f:
        content = f.read()
    if _suffix(path) == ".json":
        # A .json file is either one JSON document (a list of records) or JSON lines in disguise (c4).
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(content)
            if isinstance(data, Mapping) and isinstance(data.get(text_field), list):
                return [t or "" for t in data[text_field]]  # column layout {"text": [...]}
            records = data if isinstance(data, list) else [data]
            return [_field(r, text_field, path) for r in records]
    return [_field(json.loads(line), text_field, path) for line in content.splitlines() if line.strip()]


def _read_parquet(path: Path, text_field: str) -> list[str]:
    import pyarrow.parquet as pq  # a dependency of datasets

    schema = pq.read_schema(path)
    if text_field not in schema.names:
        raise KeyError(f"{path}: no column {text_field!r} (pass text_field=...); columns: {schema.names}")
    return [t or "" for t in pq.read_table(path, columns=[text_field]).column(text_field).to_pylist()]


def _read_file(path: Path, text_field: str) -> list[str]:
    suffix = _suffix(path)
    if suffix == ".txt":
        with _open_text(path) as f:
            return [f.read()]
    if suffix in (".jsonl", ".json"):
        return _read_json(path, text_field)
    if suffix == ".parquet":
        return _read_parquet(path, text_field)
    raise ValueError(f"{path}: unsupported file type; expected one of {LOCAL_SUFFIXES} (optionally .gz)")


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "state.json").is_file()


def _split_entries(folder: Path) -> dict[str, Path]:
    """Children of ``folder`` named after a split (``train.jsonl``, ``valid.txt``, ``test/``, ...)."""
    entries: dict[str, Path] = {}
    for child in sorted(folder.iterdir()):
        split = normalize_split(child.name.split(".")[0])
        if split in SPLITS:
            if split in entries:
                raise ValueError(
                    f"{folder}: several entries for split {split!r}: {entries[split].name}, {child.name}"
                )
            entries[split] = child
    return entries


def _load_local(path: Path, split: str, text_field: str) -> list[str]:
    if path.is_file():
        return _read_file(path, text_field)
    entries = _split_entries(path)
    if entries:
        # Split-named entries mean the folder is split already: never mix the splits.
        if split not in entries:
            raise CorpusNotFoundError(f"{path}: no entry for split {split!r}; found {sorted(entries)}")
        return _load_local(entries[split], split, text_field)
    if _is_saved_dataset(path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
        return [t or "" for t in ds[text_field]]
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and _suffix(p) in LOCAL_SUFFIXES),
        key=lambda p: p.relative_to(path).as_posix(),  # deterministic across file systems
    )
    if not files:
        raise CorpusNotFoundError(f"{path}: folder holds no {'/'.join(LOCAL_SUFFIXES)} files")
    docs: list[str] = []
    for f in files:
        docs.extend(_read_file(f, text_field))
    return docs


# --- entry point ------------------------------------------------------------------------------


def load_text(
    name_or_path: str | os.PathLike,
    split: str = "train",
    *,
    text_field: str | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Documents of a named corpus, of the offline ``"stdlib"`` corpus, or of a local path.

    Parameters
    ----------
    name_or_path : str or path-like
        A key of :data:`CORPORA` (case-insensitive) or a local file/folder (see the module docstring).
    split : str
        ``"train"``, ``"validation"`` (aliases ``"valid"``, ``"val"``, ``"dev"``) or ``"test"``. A local
        file ignores it; a folder uses its entry named after the split when it has one.
    text_field : str, optional
        Field holding the text in JSON/parquet records; default: the corpus's own (``"text"``;
        ``"sentence"`` for ptb).
    limit : int, optional
        Keep only the first ``limit`` documents.
    cache_dir : path-like, optional
        ``datasets`` cache folder for hub corpora.

    Returns
    -------
    list of str
        The documents, in the corpus's order (empty strings kept: protocols that join lines need them).

    Raises
    ------
    CorpusNotFoundError
        Unknown name, missing path, or a hub corpus that cannot be loaded (offline and not cached).
    """
    split = normalize_split(split)
    spec = corpus_spec(name_or_path)
    if spec is not None:
        if split not in spec.splits:
            raise ValueError(f"{spec.name} has no split {split!r}; available: {spec.splits}")
        if spec.source == "stdlib":
            docs = stdlib_corpus(split)
        else:
            docs = _load_hub(spec, split, text_field or spec.text_field, limit, cache_dir)
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise CorpusNotFoundError(
                f"{str(name_or_path)!r} is neither a known corpus ({', '.join(CORPORA)}) nor an existing path"
            )
        docs = _load_local(path, split, text_field or "text")
    docs = docs if limit is None else docs[:limit]
    logger.debug("%s/%s: %d documents, %d characters", name_or_path, split, len(docs), sum(map(len, docs)))
    return docs
