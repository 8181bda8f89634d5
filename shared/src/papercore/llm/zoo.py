"""Models for tests, demos and benchmarks, made here (no hub needed).

* :func:`tiny_config` / :func:`random_model`: tiny random Llama, Mistral, Qwen2 and Qwen3
  (q/k norm) configurations, GQA or MHA, tied or untied embeddings.
* Trained models: named :class:`Recipe` s (``tiny``, ``small``, ``draft``) trained on the offline
  standard-library corpus with the local BPE tokenizer, saved with ``save_pretrained``
  (safetensors) plus the tokenizer, so ``AutoModelForCausalLM.from_pretrained(path)`` loads them.
  :func:`load` returns the cached copy (``$PAPERCORE_CACHE`` or ``~/.cache/papercore``), keyed by
  the recipe's content hash, and rebuilds an entry whose manifest is missing or whose file
  hashes do not match (a crash mid-write, a truncated copy).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from papercore.io import (
    cache_dir,  # noqa: F401  (re-exported: zoo.cache_dir())
    read_json,
    write_json,
)

log = logging.getLogger(__name__)

ARCHS = ("llama", "mistral", "qwen2", "qwen3")
ZOO_FORMAT = 1  # bump when training or saving changes in a way that should invalidate caches


# ------------------------------------------------------------------------- random models
def tiny_config(
    arch: str = "llama",
    *,
    vocab_size: int = 256,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = 2,
    head_dim: int | None = None,
    intermediate_size: int | None = None,
    tie_embeddings: bool = False,
    max_position_embeddings: int = 2048,
    **overrides,
):
    """A small transformers config for ``arch`` in {llama, mistral, qwen2, qwen3}.

    ``num_kv_heads=None`` (or equal to ``num_heads``) gives multi-head attention; fewer gives GQA.
    Qwen3 has per-head q/k RMSNorm; Qwen2 has q/k/v biases; Mistral has a sliding window
    (set wider than any test sequence unless overridden).
    """
    import transformers

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}: choose from {', '.join(ARCHS)}")
    kv = num_heads if num_kv_heads is None else num_kv_heads
    if num_heads % kv:
        raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({kv})")
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=kv,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    if head_dim is not None or arch == "qwen3":
        kwargs["head_dim"] = head_dim or hidden_size // num_heads
    if arch == "mistral":
        kwargs["sliding_window"] = max_position_embeddings
    kwargs.update(overrides)
    cls = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
    }[arch]
    return cls(**kwargs)


def random_model(arch: str = "llama", *, seed: int = 0, dtype: torch.dtype = torch.float32, **config_kwargs):
    """A randomly initialised causal LM from :func:`tiny_config` (deterministic given ``seed``)."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch, **config_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


# ------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained zoo model; its hash keys the cache."""

    name: str
    arch: str = "llama"
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    tie_embeddings: bool = True
    vocab_size: int = 4096  # of the shared local tokenizer
    seqlen: int = 128
    batch_size: int = 16
    steps: int = 300
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.1
    train_chars: int = 3_000_000  # characters of the train split turned into tokens
    eval_windows: int | None = None  # test windows scored (None: the whole test split)
    seed: int = 0
    version: int = 1
    # Name of a text corpus in :data:`CORPORA` (see :func:`register_corpus`). Left out of the hash
    # when it is the default, so the keys (and weights) of the stdlib recipes never change.
    corpus: str = "stdlib"

    def config(self):
        return tiny_config(
            self.arch,
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            tie_embeddings=self.tie_embeddings,
            max_position_embeddings=max(2048, self.seqlen),
        )

    def key(self) -> str:
        """Content hash: the recipe, the zoo format and the Python minor version (the corpus is the stdlib)."""
        fields = dataclasses.asdict(self)
        if fields["corpus"] == "stdlib":
            del fields["corpus"]
        blob = json.dumps(
            {"recipe": fields, "format": ZOO_FORMAT, "python": sys.version_info[:2]},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)


RECIPES: dict[str, Recipe] = {
    # ~0.9M parameters; about a minute on 2 CPU cores. Used by the tests.
    "tiny": Recipe("tiny"),
    # A smaller model with the same tokenizer, for speculative decoding.
    "draft": Recipe(
        "draft",
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=192,
        steps=300,
        lr=4e-3,
    ),
    # ~30M parameters; a few minutes on one GPU. Used by GPU benchmarks.
    "small": Recipe(
        "small",
        hidden_size=512,
        num_layers=8,
        num_heads=8,
        num_kv_heads=4,
        intermediate_size=1536,
        tie_embeddings=False,
        seqlen=512,
        batch_size=32,
        steps=600,
        lr=1e-3,
        warmup=60,
        train_chars=20_000_000,
    ),
}


# ------------------------------------------------------------------------------- corpora
def _stdlib_split(split: str) -> list[str]:
    from papercore.llm.data import stdlib_corpus

    return stdlib_corpus(split)


CORPORA: dict = {"stdlib": _stdlib_split}


def register_corpus(name: str, fn) -> None:
    """Make ``fn(split) -> list[str]`` (``split`` in {"train", "test"}) available as ``Recipe(corpus=name)``.

    The corpus's content is not part of a recipe's hash: put a version in ``name`` (``"arith-v2"``)
    when the generator changes. Registering the same name again replaces the generator.
    """
    if not name or name == "stdlib" and fn is not _stdlib_split:
        raise ValueError(f"corpus name {name!r} is reserved or empty: choose another name")
    CORPORA[name] = fn


def corpus_docs(name: str, split: str) -> list[str]:
    """Documents of a registered corpus split (``"train"`` or ``"test"``)."""
    if name not in CORPORA:
        raise ValueError(
            f"unknown zoo corpus {name!r}: choose from {', '.join(CORPORA)} or register_corpus() it"
        )
    return list(CORPORA[name](split))


def get_recipe(name_or_recipe: str | Recipe) -> Recipe:
    if isinstance(name_or_recipe, Recipe):
        return name_or_recipe
    if name_or_recipe not in RECIPES:
        raise ValueError(f"unknown zoo recipe {name_or_recipe!r}: choose from {', '.join(RECIPES)}")
    return RECIPES[name_or_recipe]


# --------------------------------------------------------------------------------- cache
def entry_path(recipe: Recipe) -> Path:
    return cache_dir() / "zoo" / f"{recipe.name}-{recipe.key()}"


MANIFEST = "zoo_manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a complete zoo model: a manifest whose file hashes all match."""
    path = Path(path)
    try:
        files = read_json(path / MANIFEST)["files"]
        return all(_sha256(path / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def load_path(
    recipe: str | Recipe = "tiny", *, device: str | torch.device | None = None, rebuild: bool = False
) -> Path:
    """Path of the cached trained model for ``recipe``, training it first when missing or corrupt."""
    recipe = get_recipe(recipe)
    path = entry_path(recipe)
    if not rebuild and verify(path):
        return path
    if path.exists():  # our own cache folder: safe to remove
        log.warning("zoo entry %s is incomplete or corrupt; rebuilding it", path)
        shutil.rmtree(path, ignore_errors=True)
    train(recipe, path, device=device)
    return path


def load(
    recipe: str | Recipe = "tiny",
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
):
    """``(model, tokenizer)`` for a trained recipe, from the cache (built on first use)."""
    from transformers import AutoModelForCausalLM

    from papercore.llm.data import load_tokenizer

    path = load_path(recipe, device=device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    return model, load_tokenizer(path)


def load_model(spec: str, *, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32):
    """``(model, tokenizer, path)`` for ``spec``: ``"zoo:NAME"`` (a trained recipe, built on first use) or
    a saved transformers model folder. The CLIs' ``--model`` argument."""
    from transformers import AutoModelForCausalLM

    from papercore.llm.data import load_tokenizer

    if spec.startswith("zoo:"):
        path = load_path(spec.removeprefix("zoo:"), device=device)
    else:
        path = Path(spec)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--model {spec}: no config.json there; pass a saved transformers model folder or zoo:tiny"
            )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device or "cpu").eval()
    return model, load_tokenizer(path), path


def tokenizer(vocab_size: int = 4096):
    """The shared local tokenizer (trained on the stdlib train split), cached on disk."""
    from papercore.llm.data import load_tokenizer, train_tokenizer

    key = hashlib.sha256(
        json.dumps({"vocab": vocab_size, "python": sys.version_info[:2]}).encode()
    ).hexdigest()[:12]
    path = cache_dir() / "tokenizers" / f"bpe{vocab_size}-{key}"
    if (path / "tokenizer.json").is_file():
        try:
            return load_tokenizer(path)
        except Exception:
            log.warning("cached tokenizer at %s is unreadable; retraining it", path)
    tok = train_tokenizer(vocab_size=vocab_size)
    tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=_ensure(path.parent)))
    tok.save_pretrained(tmp)
    _publish(tmp, path)
    return load_tokenizer(path)


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary folder into place (replacing a stale entry)."""
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:  # another process published first
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ training
def train(
    recipe: str | Recipe,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Train ``recipe`` and save it to ``out`` (written to a temporary folder, then moved into place).

    Deterministic given the recipe's seed on a given device type and thread count. Returns the
    metrics also stored in the manifest: parameters, train time, test perplexity, and the
    unigram-baseline perplexity of the same tokenizer on the same test windows.
    """
    from transformers import AutoModelForCausalLM

    from papercore.llm.data import eval_windows, subset_docs, token_stream
    from papercore.llm.metrics import perplexity, unigram_perplexity
    from papercore.runtime import progress as progress_bar
    from papercore.runtime import resolve_device

    recipe = get_recipe(recipe)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise FileExistsError(
            f"{out} exists and is not a zoo model folder: choose an empty or new --out folder"
        )
    device = resolve_device(device)
    tok = tokenizer(recipe.vocab_size)
    train_docs = subset_docs(
        corpus_docs(recipe.corpus, "train"), recipe.train_chars, seed=recipe.seed, contiguous=True
    )
    stream = token_stream(train_docs, tok)
    test_stream = token_stream(corpus_docs(recipe.corpus, "test"), tok)
    test = eval_windows(test_stream, recipe.seqlen, max_windows=recipe.eval_windows)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(recipe.seed)
        model = AutoModelForCausalLM.from_config(recipe.config(), dtype=torch.float32).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        betas=(0.9, 0.95),
        **({"fused": True} if device.type == "cuda" else {}),
    )
    lr_at = lambda s: (
        recipe.lr
        * min(1.0, (s + 1) / recipe.warmup)
        * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / recipe.steps))))
    )
    gen = torch.Generator().manual_seed(recipe.seed)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    model.train()
    t0 = time.perf_counter()
    steps = (
        progress_bar(range(recipe.steps), desc=f"train {recipe.name}") if progress else range(recipe.steps)
    )
    loss_val = float("nan")
    for step in steps:
        starts = torch.randint(0, len(stream) - recipe.seqlen - 1, (recipe.batch_size,), generator=gen)
        batch = torch.stack([stream[s : s + recipe.seqlen] for s in starts.tolist()]).to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with amp:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == recipe.steps - 1:
            loss_val = loss.item()
            log.info("step %d loss %.3f", step, loss_val)
    train_seconds = time.perf_counter() - t0
    model.eval()
    ppl = perplexity(model, test, batch_size=16, device=device, progress=False)
    metrics = {
        "recipe": dataclasses.asdict(recipe),
        "key": recipe.key(),
        "parameters": n_params,
        "train_seconds": round(train_seconds, 1),
        "device": str(device),
        "final_train_loss": round(loss_val, 4),
        "test_perplexity": round(ppl, 3),
        "unigram_test_perplexity": round(unigram_perplexity(stream, test, recipe.vocab_size), 3),
        "test_windows": list(test.shape),
        "python": ".".join(map(str, sys.version_info[:3])),
        "torch": torch.__version__,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=_ensure(out.parent)))
    try:
        model.to("cpu").save_pretrained(tmp)
        tok.save_pretrained(tmp)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / MANIFEST, {**metrics, "files": files})  # written last: marks the entry complete
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("trained %s: %s params, %.1fs, test ppl %.2f", recipe.name, n_params, train_seconds, ppl)
    return metrics


def info(path: str | os.PathLike) -> dict:
    """The manifest (recipe, metrics, file hashes) of a trained zoo model folder."""
    return read_json(Path(path) / MANIFEST)
