"""Greedy chain speculative decoding (batch size 1) with KV caches on both models.

One cycle: the draft proposes ``W`` tokens greedily (``W`` draft forwards, plus one more in judge
mode with draft features to get the last draft token's hidden state); the target runs **one**
forward over the uncached tail plus the ``W`` proposals, which gives its greedy token at every
proposal position and its last-layer hidden state (after the final norm) at each proposal. Draft
token ``i`` is kept while ``draft_i == target_i`` or the acceptance rule of the mode allows the
mismatch; the first refused position is replaced by the target's token (the correction). As in the
reference implementation no bonus token is added when all ``W`` pass, so a cycle emits at most
``W`` tokens. Both caches are then cropped to the part whose inputs were kept.

Modes: ``lossless`` (exact target greedy output), ``judge`` (a mismatch is accepted when the judge's
P(important) is below the threshold), ``topk`` (accepted when the draft token is in the target's top
K), ``random`` (accepted with a fixed probability, the control baseline) and ``accept_all`` (the
draft's own greedy output).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from autojudge.config import MODES, Mode, SpecConfig
from papercore.llm.hf_compat import cache_kwarg, output_cache

__all__ = ["MODES", "CachedLM", "Cycle", "Mode", "SpecConfig", "SpecResult", "SpeculativeDecoder", "greedy"]


class CachedLM:
    """A causal LM with a KV cache over a token prefix: ``sync(tokens)`` crops the cache to the longest
    common prefix with ``tokens`` and feeds the rest, returning logits and last-layer hidden states
    (after the final norm) of the newly fed positions. ``vocab``: keep the first ``vocab`` logits
    only (the vocabulary shared with another model whose output layer is padded differently)."""

    def __init__(self, model, vocab: int | None = None):
        self.model = model
        self.vocab = vocab
        self.body = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.kw = cache_kwarg(self.body)
        self.cache = None
        self.tokens: list[int] = []
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def reset(self) -> None:
        self.cache, self.tokens = None, []

    def crop(self, n: int) -> None:
        if n < len(self.tokens):
            if n == 0:
                self.reset()
                return
            # a negative count removes that many positions (transformers 4.x and 5.x alike)
            self.cache.crop(n - len(self.tokens))
            self.tokens = self.tokens[:n]

    @torch.no_grad()
    def feed(self, new: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``new`` (non-empty); returns ``(logits [n, V], hidden [n, H])`` for those positions."""
        start = len(self.tokens)
        ids = torch.tensor([new], dtype=torch.long, device=self.device)
        pos = torch.arange(start, start + len(new), device=self.device)[None]
        out = self.body(input_ids=ids, position_ids=pos, use_cache=True, **{self.kw: self.cache})
        self.cache = output_cache(out)
        self.tokens.extend(new)
        self.calls += 1
        h = out.last_hidden_state[0]
        logits = self.head(h)
        return (logits if self.vocab is None else logits[:, : self.vocab]), h

    def sync(self, tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Make the cache hold ``tokens``; feeds at least the last one. Returns logits and hidden states
        of the fed positions and the index of the first fed position."""
        n = 0
        limit = min(len(self.tokens), len(tokens) - 1)
        while n < limit and self.tokens[n] == tokens[n]:
            n += 1
        self.crop(n)
        logits, h = self.feed(tokens[n:])
        return logits, h, n


@dataclass
class Cycle:
    proposed: int  # draft tokens proposed
    emitted: int  # tokens added to the output (accepted drafts + correction), after any cut
    accepted: int  # draft tokens kept
    exact: int  # leading draft tokens equal to the target's (what lossless would keep)
    judged: int  # mismatches accepted by the rule


@dataclass
class SpecResult:
    tokens: list[int]  # generated tokens (EOS included when hit)
    cycles: list[Cycle]
    target_calls: int
    draft_calls: int
    seconds: float
    stopped: str  # "eos", "stop", "length"

    @property
    def accepted_per_cycle(self) -> float:
        return sum(c.emitted for c in self.cycles) / max(1, len(self.cycles))

    @property
    def target_calls_per_token(self) -> float:
        return self.target_calls / max(1, len(self.tokens))


def _eos_ids(model, tokenizer, eos_token_id) -> set[int]:
    """``eos_token_id`` when given; else the tokenizer's EOS together with the model's generation
    config EOS ids (a chat model ends its turn with a token its tokenizer may not call EOS)."""
    if eos_token_id is not None:
        groups = [eos_token_id]
    else:
        groups = [getattr(model.generation_config, "eos_token_id", None) or model.config.eos_token_id]
        if tokenizer is not None and tokenizer.eos_token_id is not None:
            groups.append(tokenizer.eos_token_id)
    ids = set()
    for g in groups:
        if g is not None:
            ids |= {int(i) for i in (g if isinstance(g, (list, tuple)) else [g])}
    return ids


def _stop_cut(tokenizer, generated: list[int], start: int, stops: list[str]) -> int | None:
    """Smallest length >= start+1 of ``generated`` whose text contains a stop string, or None."""
    if not stops or tokenizer is None:
        return None
    if not any(s in tokenizer.decode(generated) for s in stops):
        return None
    for k in range(start + 1, len(generated) + 1):
        text = tokenizer.decode(generated[:k])
        if any(s in text for s in stops):
            return k
    return len(generated)


class SpeculativeDecoder:
    """Speculative decoding of a ``target`` with a ``draft`` (transformers causal LMs, one tokenizer).

    ``judge`` (an :class:`autojudge.judge.Judge`) is needed in ``judge`` mode; its ``setup`` says
    whether draft hidden states are needed (``DD-DT``) or only the target's (``DT``). Output layers
    of different widths (a vocabulary padded differently) are compared on the shared vocabulary;
    that needs the ``tokenizer`` (and ``draft_tokenizer`` when the draft has its own) to check it.
    """

    def __init__(self, target, draft, tokenizer=None, judge=None, eos_token_id=None, draft_tokenizer=None):
        from autojudge.models import check_same_vocab

        self.vocab = check_same_vocab(target, draft, tokenizer, draft_tokenizer)
        self.target, self.draft, self.tokenizer, self.judge = target, draft, tokenizer, judge
        self.eos = _eos_ids(target, tokenizer, eos_token_id)

    @torch.no_grad()
    def generate(
        self, prompt_ids: list[int], config: SpecConfig | None = None, stop: list[str] | None = None, **kw
    ) -> SpecResult:
        cfg = config or SpecConfig(**kw)
        if config is not None and kw:
            cfg = cfg.replace(**kw)
        if cfg.mode == "judge" and self.judge is None:
            raise ValueError("mode 'judge' needs a trained judge: pass judge=Judge.load(path)")
        if not prompt_ids:
            raise ValueError("the prompt is empty: pass at least one token")
        need_dh = cfg.mode == "judge" and self.judge.setup == "DD-DT"
        gen = torch.Generator().manual_seed(cfg.seed)
        t0 = time.perf_counter()
        tgt, drf = CachedLM(self.target, self.vocab), CachedLM(self.draft, self.vocab)
        seq = list(prompt_ids)
        out: list[int] = []
        cycles: list[Cycle] = []
        stopped = "length"
        while len(out) < cfg.max_new_tokens:
            w = min(cfg.window, cfg.max_new_tokens - len(out))
            # 1. draft W tokens greedily (stop proposing after an EOS)
            logits, _, _ = drf.sync(seq)
            proposal: list[int] = []
            d_hidden = []
            for i in range(w):
                tok = int(logits[-1].argmax())
                proposal.append(tok)
                if tok in self.eos or i == w - 1:
                    break
                logits, h = drf.feed([tok])
                d_hidden.append(h[-1])
            if need_dh:
                _, h = drf.feed([proposal[-1]])
                d_hidden.append(h[-1])
            # 2. one target forward over the uncached tail + the proposal
            t_logits, t_hidden, first = tgt.sync(seq + proposal)
            k = len(proposal)
            off = len(seq) - 1 - first  # index in t_logits of the position that predicts proposal[0]
            pred_logits = t_logits[off : off + k]
            t_greedy = pred_logits.argmax(-1).tolist()
            match = [p == t for p, t in zip(proposal, t_greedy)]
            # 3. acceptance rule at mismatches
            ok = list(match)
            if cfg.mode != "lossless" and not all(match):
                if cfg.mode == "accept_all":
                    allow = [True] * k
                elif cfg.mode == "topk":
                    top = pred_logits.topk(min(cfg.top_k, pred_logits.shape[-1]), dim=-1).indices
                    prop = torch.tensor(proposal, device=top.device)[:, None]
                    allow = (top == prop).any(-1).tolist()
                elif cfg.mode == "random":
                    allow = (torch.rand(k, generator=gen) < cfg.accept_prob).tolist()
                else:
                    th = t_hidden[off + 1 : off + 1 + k]
                    feats = torch.cat([torch.stack(d_hidden[:k]), th], -1) if need_dh else th
                    allow = (self.judge.prob(feats) < cfg.threshold).tolist()
                ok = [m or a for m, a in zip(match, allow)]
            n = 0
            while n < k and ok[n]:
                n += 1
            exact = 0
            while exact < k and match[exact]:
                exact += 1
            emitted = proposal[:n] + ([t_greedy[n]] if n < k else [])
            judged = sum(1 for i in range(n) if not match[i])
            # 4. stop conditions inside the window
            cut = len(emitted)
            for i, tok in enumerate(emitted):
                if tok in self.eos:
                    cut, stopped = i + 1, "eos"
                    break
            emitted = emitted[:cut]
            sc = _stop_cut(self.tokenizer, out + emitted, len(out), stop or [])
            if sc is not None:
                emitted, stopped = emitted[: sc - len(out)], "stop"
            out.extend(emitted)
            seq.extend(emitted)
            cycles.append(Cycle(k, len(emitted), min(n, len(emitted)), exact, judged))
            # 5. roll back: keep cached positions whose inputs were kept (and leave one token to feed)
            keep = len(seq) - len(emitted) + min(n, len(emitted)) - 0
            tgt.crop(min(keep, len(seq) - 1))
            drf.crop(min(keep, len(seq) - 1))
            if stopped in ("eos", "stop"):
                break
        if self.target.device.type == "cuda":
            torch.cuda.synchronize(self.target.device)
        return SpecResult(out, cycles, tgt.calls, drf.calls, time.perf_counter() - t0, stopped)


@torch.no_grad()
def greedy(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    eos: set[int] | int | None = None,
    vocab: int | None = None,
) -> list[int]:
    """Plain greedy decoding with a KV cache (the reference for lossless mode); ``vocab``: argmax over
    the first ``vocab`` logits only."""
    eos = {eos} if isinstance(eos, int) else set(eos or ())
    lm = CachedLM(model, vocab)
    logits, _ = lm.feed(list(prompt_ids))
    out: list[int] = []
    while len(out) < max_new_tokens:
        tok = int(logits[-1].argmax())
        out.append(tok)
        if tok in eos or len(out) == max_new_tokens:
            break
        logits, _ = lm.feed([tok])
    return out
