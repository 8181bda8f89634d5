"""Token streams, calibration windows and evaluation windows.

The usual post-training-quantization protocol (GPTQ, SpQR, AQLM):

* **calibration**: tokenize a training split into one stream and cut ``nsamples`` windows of
  ``seqlen`` tokens at uniformly random start positions (:func:`sample_windows`);
* **perplexity**: tokenize a held-out split into one stream and cut it into consecutive,
  non-overlapping windows of ``seqlen`` tokens, dropping the ragged tail (:func:`eval_windows`).

For corpora with a protocol separator (:attr:`CorpusSpec.joiner`: wikitext2 ``"\\n\\n"``, ptb and c4
``" "``) the documents are joined into one text and tokenized as a whole, exactly as those papers do;
otherwise each document is tokenized on its own and documents are separated by the EOS token.

One simplification against GPTQ's c4 and AQLM's RedPajama samplers, which draw each window inside one
random document longer than ``seqlen``: here windows are drawn from the stream of a seeded random subset
of documents, so a window may span a document boundary (marked by EOS or the joiner).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterable, Sequence

import torch

from papercore.llm.data.corpora import corpus_spec, load_text

logger = logging.getLogger(__name__)

_BATCH_DOCS = 256


def token_stream(
    docs: Iterable[str],
    tokenizer,
    *,
    add_eos: bool = True,
    joiner: str | None = None,
) -> torch.Tensor:
    """Tokenize documents into one 1D stream of token ids.

    Parameters
    ----------
    docs : iterable of str
        The documents, in order.
    tokenizer : transformers tokenizer
        Called as ``tokenizer(texts, add_special_tokens=False)``; a fast tokenizer is much faster.
    add_eos : bool
        Put ``tokenizer.eos_token_id`` between consecutive documents (not after the last one).
        Ignored when ``joiner`` is given.
    joiner : str, optional
        Join the documents with this string and tokenize the result as one text (GPTQ protocol for
        wikitext2/ptb/c4; special tokens such as a Llama BOS are then added once, as the tokenizer
        does by default). Empty documents are kept in this mode and skipped otherwise.

    Returns
    -------
    torch.LongTensor
        Shape ``[n_tokens]``.
    """
    if joiner is not None:
        ids = tokenizer(joiner.join(docs), verbose=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)
    eos = tokenizer.eos_token_id
    if add_eos and eos is None:
        raise ValueError("the tokenizer has no eos_token; pass add_eos=False or set tokenizer.eos_token")
    docs = [d for d in docs if d]
    pieces: list[int] = []
    for start in range(0, len(docs), _BATCH_DOCS):
        # Batches let a fast tokenizer use its thread pool without holding every encoding at once.
        batch = tokenizer(docs[start : start + _BATCH_DOCS], add_special_tokens=False, verbose=False)
        for ids in batch["input_ids"]:
            if add_eos and pieces:
                pieces.append(eos)
            pieces.extend(ids)
    return torch.tensor(pieces, dtype=torch.long)


def _check_stream(stream: torch.Tensor) -> None:
    if stream.dim() != 1:
        raise ValueError(f"expected a 1D token stream, got shape {tuple(stream.shape)}")


def sample_windows(stream: torch.Tensor, nsamples: int, seqlen: int, seed: int = 0) -> torch.Tensor:
    """``nsamples`` windows of ``seqlen`` tokens at random start positions (with replacement).

    Starts are uniform on ``[0, len(stream) - seqlen - 1]`` as in GPTQ (which keeps one token after the
    window for a shifted target), drawn from a local :class:`torch.Generator` seeded with ``seed``:
    the result depends on nothing else and leaves the global RNG untouched.

    Returns
    -------
    torch.LongTensor
        Shape ``[nsamples, seqlen]``.

    Raises
    ------
    ValueError
        If the stream is shorter than ``seqlen + 1`` tokens.
    """
    _check_stream(stream)
    if nsamples < 1 or seqlen < 1:
        raise ValueError(f"nsamples and seqlen must be positive, got {nsamples} and {seqlen}")
    n = stream.numel()
    if n < seqlen + 1:
        raise ValueError(
            f"token stream too short for calibration: {n} tokens, need at least seqlen + 1 = {seqlen + 1}; "
            f"use a larger corpus or split, or a smaller seqlen"
        )
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, n - seqlen, (nsamples,), generator=gen)
    return stream[starts[:, None] + torch.arange(seqlen)].long()


_STREAMS: dict[str, torch.Tensor] = {}


def _tokenizer_fingerprint(tokenizer) -> str | None:
    """A hash of everything that decides a fast tokenizer's ids (None for other tokenizers: not cached)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    extra = repr((type(tokenizer).__name__, sorted(tokenizer.special_tokens_map.items()),
                  getattr(tokenizer, "add_bos_token", None), getattr(tokenizer, "add_eos_token", None),
                  tokenizer.eos_token_id))  # fmt: skip
    return hashlib.sha256((backend.to_str() + extra).encode()).hexdigest()


def cached_token_stream(
    docs: Sequence[str], tokenizer, *, add_eos: bool = True, joiner: str | None = None
) -> torch.Tensor:
    """:func:`token_stream`, cached in memory and under ``$PAPERCORE_CACHE/tokens`` by content.

    The key hashes the documents, the joining rule and the tokenizer (its serialised model, special
    tokens and BOS/EOS settings), so a changed corpus or tokenizer never reads a stale stream.
    Tokenizing the standard-library corpus takes seconds; every LLM package's calibration and
    evaluation reads it many times.
    """
    fp = _tokenizer_fingerprint(tokenizer)
    if fp is None:
        return token_stream(docs, tokenizer, add_eos=add_eos, joiner=joiner)
    h = hashlib.sha256(repr((fp, add_eos, joiner, len(docs))).encode())
    for d in docs:
        h.update(d.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    key = h.hexdigest()[:32]
    if key in _STREAMS:
        return _STREAMS[key].clone()  # callers may write into what they get
    from papercore.io import cache_dir, load_tensors, save_tensors

    path = cache_dir("tokens", f"{key}.safetensors")
    stream = None
    if path.is_file():
        try:
            stream = load_tensors(path)["ids"]
        except Exception:  # a corrupt entry is rebuilt
            stream = None
    if stream is None:
        stream = token_stream(docs, tokenizer, add_eos=add_eos, joiner=joiner)
        try:
            save_tensors(path, {"ids": stream})
        except OSError as e:  # a read-only cache only costs speed
            logger.debug("token cache not written: %s", e)
    _STREAMS[key] = stream
    return stream.clone()


def eval_windows(stream: torch.Tensor, seqlen: int, max_windows: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows of ``seqlen`` tokens (GPTQ perplexity protocol).

    Window ``i`` is ``stream[i * seqlen : (i + 1) * seqlen]``; the ragged tail is dropped.

    Parameters
    ----------
    max_windows : int, optional
        Keep at most this many windows (the c4 protocol uses 256).

    Returns
    -------
    torch.LongTensor
        Shape ``[n, seqlen]`` with ``n = len(stream) // seqlen`` (capped at ``max_windows``).
    """
    _check_stream(stream)
    n = stream.numel() // seqlen
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(
            f"token stream too short for evaluation: {stream.numel()} tokens < seqlen = {seqlen}"
        )
    return stream[: n * seqlen].reshape(n, seqlen).long()


def subset_docs(docs: Sequence[str], max_chars: int, seed: int = 0, *, contiguous: bool = False) -> list[str]:
    """A seeded subset of documents holding about ``max_chars`` characters (all if fewer).

    Independent documents are drawn in a seeded random order until the budget is reached, then kept
    in corpus order. ``contiguous=True`` (line-level corpora such as wikitext2, whose lines only make
    sense in sequence) takes a run of consecutive documents from a seeded random start instead.
    """
    sizes = [len(d) for d in docs]
    if sum(sizes) <= max_chars:
        return list(docs)
    rng = random.Random(seed)
    if contiguous:
        # Uniform start among those whose run to the end of the corpus still holds max_chars.
        tail, last = 0, 0
        for i in range(len(docs) - 1, -1, -1):
            tail += sizes[i]
            if tail >= max_chars:
                last = i
                break
        order = range(rng.randint(0, last), len(docs))
    else:
        order = rng.sample(range(len(docs)), len(docs))
    chosen, total = [], 0
    for i in order:
        chosen.append(i)
        total += sizes[i]
        if total >= max_chars:
            break
    return [docs[i] for i in sorted(chosen)]


def get_calibration_data(
    name_or_path: str | os.PathLike,
    tokenizer,
    nsamples: int,
    seqlen: int,
    seed: int = 0,
    split: str = "train",
    *,
    max_chars: int | None = None,
    text_field: str | None = None,
) -> torch.Tensor:
    """Calibration windows ``[nsamples, seqlen]`` from a corpus (name, ``"stdlib"`` or local path).

    Parameters
    ----------
    name_or_path, split, text_field
        As for :func:`~papercore.llm.data.load_text`.
    tokenizer : transformers tokenizer
        The model's tokenizer.
    nsamples, seqlen, seed
        As for :func:`sample_windows`; ``seed`` also picks the document subset.
    max_chars : int, optional
        Tokenize only a seeded subset of about this many characters (:func:`subset_docs`). Default:
        the whole split, except for large corpora (c4, redpajama) where it is
        ``32 * nsamples * seqlen``, several times the text the windows need.
    """
    spec = corpus_spec(name_or_path)
    docs = load_text(name_or_path, split, text_field=text_field)
    joiner = spec.joiner if spec is not None else None
    if max_chars is None and spec is not None and spec.large:
        max_chars = 32 * nsamples * seqlen
    if max_chars is not None:
        docs = subset_docs(docs, max_chars, seed, contiguous=joiner is not None and not (spec and spec.large))
    stream = cached_token_stream(docs, tokenizer, joiner=joiner)
    logger.info("calibration stream for %s/%s: %d tokens", name_or_path, split, stream.numel())
    return sample_windows(stream, nsamples, seqlen, seed)


def get_eval_stream(
    name_or_path: str | os.PathLike,
    tokenizer,
    split: str | None = None,
    *,
    text_field: str | None = None,
) -> torch.Tensor:
    """Token stream of a held-out split, for :func:`eval_windows`.

    Parameters
    ----------
    split : str, optional
        Default: the corpus's evaluation split (``test``; ``validation`` for c4; ``test`` for local
        folders split by name; a local file has a single split).

    Notes
    -----
    Named corpora follow their protocol: wikitext2 test lines joined with ``"\\n\\n"``, ptb with
    ``" "``, c4 the first 1100 validation documents joined with ``" "`` (then use
    ``eval_windows(stream, seqlen, max_windows=256)``). Other corpora: EOS between documents.
    """
    spec = corpus_spec(name_or_path)
    if split is None:
        if spec is not None and spec.eval_split is None:
            raise ValueError(f"{spec.name} has no held-out split; pass split= explicitly")
        split = spec.eval_split if spec is not None else "test"
    docs = load_text(name_or_path, split, text_field=text_field)
    if spec is not None and spec.eval_docs is not None:
        docs = docs[: spec.eval_docs]
    stream = cached_token_stream(docs, tokenizer, joiner=spec.joiner if spec is not None else None)
    logger.info("eval stream for %s/%s: %d tokens", name_or_path, split, stream.numel())
    return stream
