"""``aqlm`` command line: quantize, evaluate, fine-tune and benchmark AQLM models.

With no arguments, ``aqlm quantize`` quantizes the papercore zoo ``tiny`` model at the 2x8g8
preset on the built-in standard-library corpus and prints its perplexity and exact bits.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aqlm import __version__
from papercore.cli import CLI, Command, CommonOptions, UserError, write_resolved_config
from papercore.llm.metrics import corpus_perplexity
from papercore.llm.zoo import load_model

log = logging.getLogger(__name__)


@dataclass
class QuantizeOptions:
    model: str = field(
        default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small / zoo:draft"}
    )
    out: Path | None = field(default=None, metadata={"help": "output folder for the quantized checkpoint"})
    scheme: str | None = field(default=None, metadata={"help": "preset such as 2x8g8, 1x16g8 (or MxBgG)"})
    num_codebooks: int | None = None
    nbits_per_codebook: int | None = None
    in_group_size: int | None = None
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    nsamples: int = field(default=64, metadata={"help": "calibration sequences"})
    seqlen: int = field(default=128, metadata={"help": "tokens per calibration sequence"})
    beam_size: int = 1
    relative_mse_tolerance: float = 0.01
    max_epochs: int = 100
    steps_per_epoch: int = 100
    lr: float = 1e-4
    finetune_max_epochs: int = field(default=0, metadata={"help": "block fine-tuning epochs (0: off)"})
    finetune_lr: float = 1e-5
    val_size: int = field(default=0, metadata={"help": "calibration sequences held out for fine-tuning"})
    true_sequential: bool = False
    offload_activations: bool = False
    resume: bool = field(default=False, metadata={"help": "continue from the blocks saved in OUT/blocks"})
    eval_dataset: str = field(
        default="stdlib", metadata={"help": "corpus for the perplexity printed at the end"}
    )
    eval_seqlen: int | None = None
    eval_windows: int | None = field(default=64, metadata={"help": "evaluation windows (None: all)"})


def _aqlm_config(opts: QuantizeOptions):
    from aqlm.config import AQLMConfig, parse_scheme

    m, b, g = parse_scheme(opts.scheme or "2x8g8")
    m = opts.num_codebooks or m
    b = opts.nbits_per_codebook or b
    g = opts.in_group_size or g
    return AQLMConfig(
        num_codebooks=m,
        nbits_per_codebook=b,
        in_group_size=g,
        beam_size=opts.beam_size,
        relative_mse_tolerance=opts.relative_mse_tolerance,
        max_epochs=opts.max_epochs,
        steps_per_epoch=opts.steps_per_epoch,
        lr=opts.lr,
        finetune_max_epochs=opts.finetune_max_epochs,
        finetune_lr=opts.finetune_lr,
        val_size=opts.val_size,
        true_sequential=opts.true_sequential,
    )


def quantize(opts: QuantizeOptions, common: CommonOptions) -> int:
    import torch

    from aqlm.checkpoint import save_quantized
    from aqlm.quantize import check_model, model_bits, quantize_
    from papercore.io import write_json
    from papercore.llm.data import get_calibration_data

    device = common.torch_device
    dtype = torch.float32 if device.type == "cpu" else common.torch_dtype
    config = _aqlm_config(opts)
    out = opts.out or Path(tempfile.mkdtemp(prefix="aqlm-"))
    if out.exists() and any(out.iterdir()) and not opts.resume and not (out / "blocks").exists():
        raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume a run)")
    model, tok, src = load_model(opts.model, device=device, dtype=dtype)
    check_model(model, config)  # unsupported models, group sizes, non-finite weights: before any work
    calib = get_calibration_data(opts.dataset, tok, opts.nsamples, opts.seqlen, seed=common.seed)
    print(
        f"quantizing {src} with AQLM {config.scheme} on {opts.nsamples}x{opts.seqlen} tokens of {opts.dataset}"
    )
    eval_seqlen = opts.eval_seqlen or opts.seqlen
    ppl_before = corpus_perplexity(
        model, tok, opts.eval_dataset, eval_seqlen, opts.eval_windows, device=device
    )
    t0 = time.perf_counter()
    report = quantize_(
        model,
        config,
        calib,
        checkpoint_dir=out / "blocks",
        resume=opts.resume,
        offload=opts.offload_activations,
        device=device,
        seed=common.seed,
    )
    seconds = time.perf_counter() - t0
    save_quantized(model, out / "model", tokenizer=tok)
    ppl_after = corpus_perplexity(
        model, tok, opts.eval_dataset, eval_seqlen, opts.eval_windows, device=device
    )
    bits = model_bits(model)
    summary = {
        "model": str(src),
        "scheme": config.scheme,
        "seconds": round(seconds, 1),
        "perplexity_before": ppl_before,
        "perplexity_after": ppl_after,
        **bits,
        "eval": {"dataset": opts.eval_dataset, "seqlen": eval_seqlen, "windows": opts.eval_windows},
    }
    write_json(out / "summary.json", summary)
    write_resolved_config(out, opts, common)
    print(f"saved {out / 'model'} ({seconds:.1f} s)")
    print(f"perplexity {ppl_before:.2f} -> {ppl_after:.2f} ({opts.eval_dataset}, seqlen {eval_seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.3f} in quantized linears "
        f"(codebooks and scales included), {bits['model_bits_per_parameter']:.3f} for the whole model"
    )
    log.debug("per-layer report: %s", report.layers)
    return 0


@dataclass
class EvalOptions:
    model: Path = field(default=Path("."), metadata={"help": "a quantized (or plain) model folder"})
    dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    seqlen: int = 128
    windows: int | None = field(default=None, metadata={"help": "evaluation windows (None: the whole split)"})


def evaluate(opts: EvalOptions, common: CommonOptions) -> int:
    from aqlm.checkpoint import load_quantized
    from aqlm.quantize import model_bits
    from papercore.llm.data import load_tokenizer

    if not (opts.model / "config.json").is_file():
        raise UserError(
            f"--model {opts.model}: no config.json there; pass a folder written by `aqlm quantize`"
        )
    model = load_quantized(opts.model, device=common.torch_device)
    tok = load_tokenizer(opts.model)
    ppl = corpus_perplexity(model, tok, opts.dataset, opts.seqlen, opts.windows, device=common.torch_device)
    bits = model_bits(model)
    print(f"perplexity {ppl:.3f} ({opts.dataset}, seqlen {opts.seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.4f} in quantized linears, "
        f"{bits['model_bits_per_parameter']:.4f} for the whole model ({bits['total_parameters']:,} parameters)"
    )
    return 0


@dataclass
class FinetuneOptions:
    quantized: Path = field(
        default=Path("."), metadata={"help": "folder written by `aqlm quantize` (its model/)"}
    )
    teacher: str = field(default="zoo:tiny", metadata={"help": "the original model (folder or zoo:NAME)"})
    out: Path | None = field(default=None, metadata={"help": "output folder for the fine-tuned checkpoint"})
    dataset: str = "stdlib"
    nsamples: int = 128
    seqlen: int = 128
    epochs: int = 1
    lr: float = 3e-4
    batch_size: int = 8
    train_nonquantized: bool = True
    code_update_every: int = field(
        default=0, metadata={"help": "discrete code update every K steps (0: off)"}
    )
    max_code_change: float = 0.01
    code_lr: float = 0.1
    eval_windows: int | None = 64


def finetune(opts: FinetuneOptions, common: CommonOptions) -> int:
    """End-to-end fine-tuning: distil the teacher's logits into the quantized model (KL)."""
    from aqlm.checkpoint import load_quantized, save_quantized
    from aqlm.finetune import distill_
    from papercore.llm.data import get_calibration_data

    if opts.out is None:
        raise UserError("--out is required: the folder for the fine-tuned checkpoint")
    qpath = (
        opts.quantized / "model" if (opts.quantized / "model" / "config.json").is_file() else opts.quantized
    )
    if not (qpath / "config.json").is_file():
        raise UserError(f"--quantized {opts.quantized}: no quantized model there (expected config.json)")
    device = common.torch_device
    student = load_quantized(qpath, device=device)
    teacher, tok, _ = load_model(opts.teacher, device=device, dtype=next(student.parameters()).dtype)
    if teacher.config.vocab_size != student.config.vocab_size:
        raise UserError(
            "--teacher has another vocabulary than the quantized model: pass the model it was quantized from"
        )
    data = get_calibration_data(opts.dataset, tok, opts.nsamples, opts.seqlen, seed=common.seed + 1)
    before = corpus_perplexity(student, tok, "stdlib", opts.seqlen, opts.eval_windows, device=device)
    res = distill_(
        student,
        teacher,
        data,
        epochs=opts.epochs,
        lr=opts.lr,
        batch_size=opts.batch_size,
        train_nonquantized=opts.train_nonquantized,
        code_update_every=opts.code_update_every,
        max_code_change=opts.max_code_change,
        code_lr=opts.code_lr,
        seed=common.seed,
    )
    after = corpus_perplexity(student, tok, "stdlib", opts.seqlen, opts.eval_windows, device=device)
    save_quantized(student, opts.out, tokenizer=tok)
    write_resolved_config(opts.out, opts, common)
    print(
        f"fine-tuned {res.steps} steps: KL {res.train_kl[0]:.4f} -> {res.train_kl[-1]:.4f}; "
        f"perplexity {before:.2f} -> {after:.2f}; saved {opts.out}"
    )
    return 0


@dataclass
class BenchOptions:
    scheme: str = "2x8g8"
    shape: tuple[int, ...] = field(default=(4096, 4096), metadata={"help": "in_features out_features"})
    tokens: int = 1
    repeats: int = 50


def bench(opts: BenchOptions, common: CommonOptions) -> int:
    """Time the AQLM layer against a dense F.linear of the same shape on the current device."""
    import statistics

    import torch
    import torch.nn.functional as F

    from aqlm.config import AQLMConfig
    from aqlm.kernels import select_path
    from aqlm.quantize import random_quantize_

    device = common.torch_device
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    in_f, out_f = opts.shape
    dense = torch.nn.Linear(in_f, out_f, bias=False, device=device, dtype=dtype)
    layer = random_quantize_(
        torch.nn.Sequential(torch.nn.Linear(in_f, out_f, bias=False, device=device, dtype=dtype)),
        AQLMConfig.from_scheme(opts.scheme),
        skip=(),
    )[0]
    x = torch.randn(opts.tokens, in_f, device=device, dtype=dtype)

    def timed(fn) -> float:
        for _ in range(5):
            fn()
        times = []
        for _ in range(opts.repeats):
            if device.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    with torch.no_grad():
        ms_q = timed(lambda: layer(x))
        ms_d = timed(lambda: F.linear(x, dense.weight))
    path = select_path(x, layer.codes, layer.codebooks)
    print(
        f"{opts.scheme} {in_f}x{out_f}, {opts.tokens} token(s), {device}, {dtype}: AQLM ({path}) {ms_q:.3f} ms, "
        f"dense F.linear {ms_d:.3f} ms, speed-up {ms_d / ms_q:.2f}x (median of {opts.repeats})"
    )
    return 0


def demo(common: CommonOptions) -> int:
    """The embedded default: quantize zoo:tiny at 2x8g8 and report perplexity and bits."""
    for name in ("aqlm", "papercore"):  # a short summary, not the per-layer log of a long job
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="aqlm-demo-") as tmp:
        opts = QuantizeOptions(out=Path(tmp) / "run", nsamples=32, max_epochs=20)
        return quantize(opts, common)


app = CLI(
    "aqlm",
    "AQLM: Additive Quantization of Language Models (quantize, eval, demo).",
    [
        Command(
            "quantize", quantize, "quantize a model (default: the zoo tiny model at 2x8g8)", QuantizeOptions
        ),
        Command("eval", evaluate, "perplexity and exact bits of a quantized model", EvalOptions),
        Command(
            "finetune",
            finetune,
            "end-to-end fine-tuning by distillation from the original model",
            FinetuneOptions,
        ),
        Command("bench", bench, "time the AQLM kernels against dense F.linear on this device", BenchOptions),
        Command("demo", demo, "quantize the built-in tiny model and print perplexity and bits"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
