"""The ``papercore`` program: environment info, the model zoo, a self-demo.

(Packages build their own CLIs from :mod:`papercore.cli`.)
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from papercore import __version__
from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config

__all__ = ["app", "main"]


def info(common: CommonOptions) -> int:
    """Print versions of the stack, the device and how Triton kernels would run."""
    import torch

    from papercore.kernels.triton_guard import interpreter_enabled, triton_mode, triton_version

    def version(mod: str) -> str:
        try:
            return __import__(mod).__version__
        except Exception:
            return "not installed"

    rows = {
        "papercore": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version() or "not installed",
        "transformers": version("transformers"),
        "datasets": version("datasets"),
        "tokenizers": version("tokenizers"),
        "cuda available": str(torch.cuda.is_available()),
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "triton mode": triton_mode() + (" (TRITON_INTERPRET=1)" if interpreter_enabled() else ""),
        "zoo cache": str(_cache_dir()),
    }
    width = max(map(len, rows))
    for k, v in rows.items():
        print(f"{k:<{width}}  {v}")
    return 0


def _cache_dir() -> Path:
    from papercore.llm.zoo import cache_dir

    return cache_dir()


@dataclass
class ZooTrainOptions:
    recipe: str = field(default="tiny", metadata={"help": "recipe name (see `papercore zoo list`)"})
    out: Path | None = field(default=None, metadata={"help": "output folder (default: the zoo cache entry)"})
    steps: int | None = field(
        default=None, metadata={"help": "override the recipe's number of training steps"}
    )


def zoo_train(cfg: ZooTrainOptions, common: CommonOptions) -> int:
    from papercore.llm import zoo

    try:
        recipe = zoo.get_recipe(cfg.recipe)
    except ValueError as e:
        raise UserError(str(e)) from e
    if cfg.steps is not None:
        recipe = recipe.replace(steps=cfg.steps, seed=common.seed)
    elif common.seed:
        recipe = recipe.replace(seed=common.seed)
    out = cfg.out or zoo.entry_path(recipe)
    try:
        metrics = zoo.train(recipe, out, device=common.torch_device)
    except FileExistsError as e:
        raise UserError(str(e)) from e
    write_resolved_config(out, cfg, common, name="zoo_train_config.json")
    print(f"saved {recipe.name} ({metrics['parameters']:,} parameters) to {out}")
    print(
        f"train time {metrics['train_seconds']} s on {metrics['device']}; test perplexity "
        f"{metrics['test_perplexity']:.2f} (unigram baseline {metrics['unigram_test_perplexity']:.2f})"
    )
    return 0


def zoo_list(common: CommonOptions) -> int:
    from papercore.llm import zoo

    for name, r in zoo.RECIPES.items():
        path = zoo.entry_path(r)
        status = "cached" if zoo.verify(path) else "not built"
        print(
            f"{name:<6} {r.arch:<6} d={r.hidden_size:<4} layers={r.num_layers:<2} heads={r.num_heads}/{r.num_kv_heads} "
            f"steps={r.steps:<5} key={r.key()}  [{status}] {path}"
        )
    return 0


def demo(common: CommonOptions) -> int:
    """Self-demo: the bit-packing kernel, then the tiny zoo model (trained on first use)."""
    import torch

    from papercore.kernels.packing import pack_bits, unpack_bits
    from papercore.kernels.triton_guard import triton_mode
    from papercore.llm import zoo

    dev = common.torch_device
    backend = "triton" if triton_mode(dev.type) != "unavailable" else "torch"
    codes = torch.randint(0, 8, (1000,), device=dev)
    words = pack_bits(codes, 3, backend=backend)
    back = unpack_bits(words, 3, 1000, backend=backend)
    print(
        f"bit packing ({backend}): 1000 3-bit codes -> {words.numel() * words.element_size()} bytes, "
        f"round-trip exact: {bool((back.to(codes.dtype) == codes).all())}"
    )
    t0 = time.perf_counter()
    path = zoo.load_path("tiny", device=dev)
    m = zoo.info(path)
    print(f"zoo 'tiny' ({m['parameters']:,} parameters) ready in {time.perf_counter() - t0:.1f} s at {path}")
    print(
        f"  test perplexity {m['test_perplexity']:.2f} vs unigram baseline {m['unigram_test_perplexity']:.2f}"
    )
    model, tok = zoo.load("tiny")
    prompt = "class Foo:\n    def __init__(self"
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=32, do_sample=False, repetition_penalty=1.3, pad_token_id=tok.pad_token_id
        )
    print("  greedy sample:", repr(tok.decode(out[0][ids.shape[1] :])))
    return 0


def _geometry_commands() -> list[Command]:
    """``papercore geometry metrics`` when the geometry extra's dependencies are installed."""
    try:
        from papercore.geometry.cli import COMMANDS
    except ImportError:
        return []
    return COMMANDS


app = CLI(
    "papercore",
    "Shared foundation of the paper packages: environment info, model zoo, self-demo.",
    [
        Command("info", info, "print versions, device and Triton mode"),
        Command("demo", demo, "run the kernels and the tiny zoo model (trains it on first use)"),
        Command(
            "zoo train",
            zoo_train,
            "train a zoo recipe and save it with save_pretrained",
            options=ZooTrainOptions,
        ),
        Command("zoo list", zoo_list, "list zoo recipes and whether they are cached"),
        *_geometry_commands(),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
