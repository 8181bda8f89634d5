"""The built-in target and draft: small Llamas trained on the arithmetic-chain task with
``papercore.llm.zoo`` recipes (cached by content hash), and loading of any model pair.

Both use the zoo's byte-level tokenizer with no merges (``vocab_size=260``: one token per
character, so every digit and operator is its own token). The target is trained on text in the
target's wording habit, the draft (narrower, fewer steps) on text in the draft's habit. Measured
on CPU (60 eval problems, task v4): target 98% gold accuracy after 4000 steps, draft 37% after
2000 (about 6 min of 2-core CPU training for both on first use, cached after).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import torch

from autojudge import task
from papercore.llm import zoo

log = logging.getLogger(__name__)

CORPUS_DOCS = {"train": 40_000, "test": 400}


def _corpus_fn(style: task.StylePolicy, variant: str = "builtin"):
    def fn(split: str) -> list[str]:
        return task.corpus(style, CORPUS_DOCS[split], seed=0 if split == "train" else 1, variant=variant)

    return fn


TARGET_CORPUS = f"autojudge-arith-target-v{task.TASK_VERSION}"
DRAFT_CORPUS = f"autojudge-arith-draft-v{task.TASK_VERSION}"
zoo.register_corpus(TARGET_CORPUS, _corpus_fn(task.TARGET_STYLE))
zoo.register_corpus(DRAFT_CORPUS, _corpus_fn(task.DRAFT_STYLE))
# the demo's one-step task (``--data builtin-small``)
SMALL_TARGET_CORPUS = f"autojudge-arith-small-target-v{task.TASK_VERSION}"
SMALL_DRAFT_CORPUS = f"autojudge-arith-small-draft-v{task.TASK_VERSION}"
zoo.register_corpus(SMALL_TARGET_CORPUS, _corpus_fn(task.TARGET_STYLE, "builtin-small"))
zoo.register_corpus(SMALL_DRAFT_CORPUS, _corpus_fn(task.DRAFT_STYLE, "builtin-small"))

TARGET_RECIPE = zoo.Recipe(
    "autojudge-target",
    corpus=TARGET_CORPUS,
    vocab_size=260,
    hidden_size=128,
    num_layers=3,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=384,
    tie_embeddings=True,
    seqlen=128,  # a whole 4-step document fits in a window (96 cut them: 63% accuracy)
    batch_size=12,
    steps=4000,  # 2400 steps: 93% accuracy but fragile after swapped-in draft tokens (88.9% label agreement)
    lr=3e-3,
    warmup=50,
    train_chars=4_000_000,
    eval_windows=64,
)
DRAFT_RECIPE = zoo.Recipe(
    "autojudge-draft",
    corpus=DRAFT_CORPUS,
    vocab_size=260,
    hidden_size=64,
    # two layers: copying an operand from the prompt needs an induction head. The one-layer draft
    # of v3 mis-copied operands and operators (3% accuracy, 68% of mismatches important), which
    # capped what any judge could accept (a perfect one: 1.27x accepted tokens per cycle at W = 8).
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=192,
    tie_embeddings=True,
    seqlen=128,
    batch_size=18,
    steps=2000,
    lr=4e-3,
    warmup=30,
    train_chars=4_000_000,
    eval_windows=64,
)
# A deeper target on the same text, for wall-clock measurements. The built-in pair is
# overhead-bound (a draft forward costs about a target forward), so speculative decoding saves
# little time whatever a judge accepts; with time per token (W c_d + c_t) / (tokens per cycle),
# the judge's 1.6x more accepted tokens per cycle turns into >= 1.3x wall-clock only once a target
# forward costs several draft forwards. Both the CPU and a GPU are per-layer-overhead bound at
# these sizes, so the target is deeper rather than wider (about 25 min of 2-core CPU training).
TARGET_LARGE_RECIPE = dataclasses.replace(
    TARGET_RECIPE,
    name="autojudge-target-large",
    num_layers=16,
    lr=2e-3,
)
# The demo's pair (``autojudge demo``), trained from an empty cache within the demo's budget (3
# minutes on 2 CPU cores for everything) on the one-step task ``builtin-small``. Measured there (one
# thread, 40 problems): a 2-layer target reached 90% gold accuracy after 800 of 1000 steps (67 CPU-s)
# and 100% after 1000; a 3-layer one 40% after 600 of 700 steps. On the full 2-4 step task a 3-layer
# target was at 0-20% within the same minute (it still mis-copied operators and operands).
DEMO_TARGET_RECIPE = dataclasses.replace(
    TARGET_RECIPE, name="autojudge-demo-target", corpus=SMALL_TARGET_CORPUS, num_layers=2, steps=800
)
DEMO_DRAFT_RECIPE = dataclasses.replace(
    DRAFT_RECIPE, name="autojudge-demo-draft", corpus=SMALL_DRAFT_CORPUS, steps=250
)
BUILTIN = {
    "builtin:target": TARGET_RECIPE,
    "builtin:draft": DRAFT_RECIPE,
    "builtin:target-large": TARGET_LARGE_RECIPE,
    "builtin:demo-target": DEMO_TARGET_RECIPE,
    "builtin:demo-draft": DEMO_DRAFT_RECIPE,
}


@contextlib.contextmanager
def one_thread():
    """Run on one intra-op thread (restored after): the built-in models train the same way on any
    core count, and tiny models lose far more to a second thread on a busy machine than they gain."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load(spec: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """``(model, tokenizer, path)`` for ``builtin:target``/``builtin:draft`` (trained on first use),
    ``zoo:NAME``, or a saved transformers model folder / hub id (``from_pretrained``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec in BUILTIN:
        if torch.device(device).type == "cpu":
            with one_thread():
                path = zoo.load_path(BUILTIN[spec], device=device)
        else:
            path = zoo.load_path(BUILTIN[spec], device=device)
    elif spec.startswith("zoo:"):
        return zoo.load_model(spec, device=device, dtype=dtype)
    else:
        path = Path(spec)
        if not (path / "config.json").is_file() and (path.exists() or "/" not in spec):
            raise FileNotFoundError(
                f"model {spec!r}: no config.json there; pass a saved transformers model folder, "
                f"a hub id, zoo:NAME, or {' / '.join(BUILTIN)}"
            )
        path = spec if not (Path(spec) / "config.json").is_file() else path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path), path


def load_pair(
    target: str = "builtin:target",
    draft: str = "builtin:draft",
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """``(target, draft, tokenizer)``; raises ValueError when the two vocabularies differ."""
    t, tok, _ = load(target, device=device, dtype=dtype)
    d, dtok, _ = load(draft, device=device, dtype=dtype)
    check_same_vocab(t, d, tok, dtok)
    return t, d, tok


def _vocab(tok) -> dict | None:
    get = getattr(tok, "get_vocab", None)
    return get() if get is not None else None


def check_same_vocab(target, draft, tok=None, dtok=None) -> int | None:
    """Check that two models can be speculated together; returns how many logits to compare (None:
    all, when both output layers have the same width).

    Tokenizers are compared by vocabulary (token to id). Output layers may be padded differently
    (Qwen2.5 0.5B-3B have 151,936 logits and 7B+ 152,064 for the same 151,665-token vocabulary): the
    logits are then compared on the tokenizer's vocabulary (ids below its largest id + 1), which
    needs a tokenizer, and one that fits in both output layers."""
    tv, dv = target.get_output_embeddings().out_features, draft.get_output_embeddings().out_features
    if tok is not None and dtok is not None and tok is not dtok and _vocab(tok) != _vocab(dtok):
        raise ValueError(
            "draft and target tokenizers differ: speculative decoding needs one shared tokenizer vocabulary"
        )
    if tv == dv:
        return None
    known = tok if tok is not None else dtok
    if known is None:
        raise ValueError(
            f"draft and target vocabularies differ ({dv} vs {tv} logits) and no tokenizer was given to "
            "compare them: pass the tokenizer (speculative decoding needs one shared tokenizer)"
        )
    vocab = _vocab(known)
    n = max(vocab.values()) + 1 if vocab else len(known)
    if n > min(tv, dv):
        raise ValueError(
            f"draft and target vocabularies differ ({dv} vs {tv} logits for a {n}-token tokenizer): "
            "speculative decoding needs two models that share one tokenizer"
        )
    log.info("output layers of %d and %d logits: comparing the tokenizer's %d", tv, dv, n)
    return n


def fingerprint(model) -> str:
    """A short hash of a model's config and a sample of its weights (identifies it in a saved judge)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, p in sorted(model.state_dict().items()):
        flat = p.detach().flatten()
        step = max(1, flat.numel() // 64)
        h.update(name.encode())
        h.update(flat[::step][:64].to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()[:16]
