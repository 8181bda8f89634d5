"""Text data for the LLM toolkit: corpora, an offline corpus, a local tokenizer, calibration windows.

* :func:`load_text` -- documents of a named corpus (:data:`CORPORA`: ``wikitext2``, ``ptb``, ``c4``,
  ``redpajama`` from the Hugging Face hub; ``stdlib`` offline) or of a local file/folder.
* :func:`stdlib_corpus` -- the offline corpus: the interpreter's standard library sources, split
  90/5/5 by a hash of each file's relative path.
* :func:`train_tokenizer` / :func:`load_tokenizer` -- a byte-level BPE tokenizer (default 4096 tokens).
* :func:`token_stream`, :func:`sample_windows`, :func:`eval_windows`, :func:`get_calibration_data`,
  :func:`get_eval_stream` -- the GPTQ-style calibration and perplexity protocols.

``datasets``, ``tokenizers`` and ``transformers`` are imported only when a function needs them.
"""

from papercore.llm.data.corpora import (
    CORPORA,
    CorpusNotFoundError,
    CorpusSpec,
    corpus_spec,
    hub_reachable,
    load_text,
)
from papercore.llm.data.sampling import (
    eval_windows,
    get_calibration_data,
    get_eval_stream,
    sample_windows,
    subset_docs,
    token_stream,
)
from papercore.llm.data.stdlib_corpus import (
    split_of,
    stdlib_corpus,
    stdlib_corpus_info,
    stdlib_docstrings,
    stdlib_files,
)
from papercore.llm.data.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_tokenizer

__all__ = [
    "CORPORA",
    "SPECIAL_TOKENS",
    "CorpusNotFoundError",
    "CorpusSpec",
    "corpus_spec",
    "eval_windows",
    "get_calibration_data",
    "get_eval_stream",
    "hub_reachable",
    "load_text",
    "load_tokenizer",
    "sample_windows",
    "split_of",
    "stdlib_corpus",
    "stdlib_corpus_info",
    "stdlib_docstrings",
    "stdlib_files",
    "subset_docs",
    "token_stream",
    "train_tokenizer",
]
