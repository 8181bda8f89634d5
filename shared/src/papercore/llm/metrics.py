"""Evaluation metrics for causal language models.

:func:`perplexity` follows the GPTQ protocol: the evaluation stream is cut into
non-overlapping windows of ``seqlen`` tokens (see :func:`papercore.llm.data.eval_windows`), each
window is scored independently, and

.. math:: \\mathrm{PPL} = \\exp\\Big(\\frac{1}{W (L-1)} \\sum_{w=1}^{W} \\sum_{t=2}^{L} -\\log p(x^w_t \\mid x^w_{<t})\\Big).

With ``chunk_size=k`` each window is fed ``k`` tokens at a time through the model's KV cache
(the protocol for KV-cache quantization: every token attends to what the cache returns, not to
exact keys and values). ``cache_factory`` makes the cache for each batch (default: transformers'
``DynamicCache``); with an exact cache the result equals the unchunked one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from papercore.llm.hf_compat import cache_kwarg, output_cache
from papercore.runtime import progress as progress_bar


@torch.no_grad()
def perplexity(
    model,
    windows: torch.Tensor,
    *,
    batch_size: int = 1,
    chunk_size: int | None = None,
    cache_factory: Callable[[], object] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> float:
    """Perplexity of ``model`` over ``windows`` (``[W, L]`` token ids), as :math:`\\exp` of the mean NLL.

    Parameters
    ----------
    model : transformers causal LM
    windows : LongTensor ``[W, L]``
        Non-overlapping evaluation windows.
    batch_size : int
        Windows per forward pass.
    chunk_size : int, optional
        Feed each window ``chunk_size`` tokens at a time through a KV cache.
    cache_factory : callable, optional
        Returns a fresh cache object for each batch (used with ``chunk_size``).
    device : device, optional
        Where to run; default: the device of the model's first parameter.
    """
    if windows.dim() != 2 or windows.shape[1] < 2:
        raise ValueError(
            f"windows must be a [num_windows, seqlen >= 2] tensor, got shape {tuple(windows.shape)}"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    batches = range(0, windows.shape[0], batch_size)
    for start in progress_bar(batches, desc="perplexity") if progress else batches:
        ids = windows[start : start + batch_size].to(device)
        logits = _logits(model, ids, chunk_size, cache_factory)
        nll = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="sum"
        )
        total_nll += nll.item()
        total_tokens += ids[:, 1:].numel()
    return math.exp(total_nll / total_tokens)


def _logits(model, ids, chunk_size, cache_factory):
    if chunk_size is None or chunk_size >= ids.shape[1]:
        return model(input_ids=ids, use_cache=False).logits
    if cache_factory is None:
        from transformers import DynamicCache

        cache_factory = lambda: DynamicCache(config=model.config)
    cache, key = cache_factory(), cache_kwarg(model)
    pieces = []
    for s in range(0, ids.shape[1], chunk_size):
        chunk = ids[:, s : s + chunk_size]
        positions = (
            torch.arange(s, s + chunk.shape[1], device=ids.device).unsqueeze(0).expand(ids.shape[0], -1)
        )
        out = model(input_ids=chunk, position_ids=positions, use_cache=True, **{key: cache})
        cache = output_cache(out)
        pieces.append(out.logits)
    return torch.cat(pieces, dim=1)


def corpus_perplexity(
    model,
    tokenizer,
    dataset: str = "stdlib",
    seqlen: int = 128,
    max_windows: int | None = None,
    *,
    device=None,
    batch_size: int = 8,
) -> float:
    """:func:`perplexity` on the evaluation split of a named corpus or local path (the CLIs' evaluation)."""
    from papercore.llm.data import eval_windows, get_eval_stream

    stream = get_eval_stream(dataset, tokenizer)
    return perplexity(
        model,
        eval_windows(stream, seqlen, max_windows=max_windows),
        batch_size=batch_size,
        device=device,
        progress=False,
    )


def unigram_perplexity(train_stream: torch.Tensor, windows: torch.Tensor, vocab_size: int) -> float:
    """Perplexity of the add-one-smoothed unigram model fitted on ``train_stream``, scored like
    :func:`perplexity` (every token of each window but the first)."""
    counts = torch.bincount(train_stream.flatten(), minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    targets = windows[:, 1:].flatten()
    return math.exp(-logp[targets].mean().item())
