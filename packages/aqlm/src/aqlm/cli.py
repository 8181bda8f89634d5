"""``aqlm`` command line: quantize, evaluate, fine-tune and benchmark AQLM models.

With no arguments, ``aqlm quantize`` quantizes the papercore zoo ``tiny`` model at the 2x8g8
preset on the built-in standard-library corpus and prints its perplexity and exact bits.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aqlm import __version__
from aqlm.config import SCHEMES, AQLMConfig, DistillConfig, scheme_values
from papercore.cli import CLI, Command, CommonOptions, Preset, UserError, check_resume, write_resolved_config
from papercore.llm.metrics import corpus_perplexity
from papercore.llm.zoo import load_model

log = logging.getLogger(__name__)


BLOCKS = ".blocks"  # per-block checkpoints inside the output folder, removed once the model is saved


@dataclass
class QuantizeOptions:
    """Run options of ``aqlm quantize`` (the method's options are :class:`~aqlm.AQLMConfig`)."""

    model: str = field(
        default="zoo:tiny", metadata={"help": "model folder, or zoo:tiny / zoo:small / zoo:draft"}
    )
    out: Path | None = field(
        default=None,
        metadata={
            "help": "output folder: the quantized model is written at its root (default: a temp folder)"
        },
    )
    dataset: str = field(default="stdlib", metadata={"help": "calibration corpus name or local path"})
    nsamples: int = field(
        default=64, metadata={"help": "calibration sequences (a multiple of the processes)"}
    )
    seqlen: int = field(default=128, metadata={"help": "tokens per calibration sequence"})
    calib_chars_per_token: int = field(
        default=64,
        metadata={
            "help": "tokenize a random subset of about this many characters per calibration token "
            "(nsamples x seqlen) of the corpus; 0: the whole split"
        },
    )
    offload_activations: bool = field(
        default=False, metadata={"help": "keep block activations on the CPU between blocks"}
    )
    resume: bool = field(
        default=False, metadata={"help": f"continue a run from the blocks saved in OUT/{BLOCKS}"}
    )
    keep_blocks: bool = field(
        default=False, metadata={"help": f"keep the per-block checkpoints (OUT/{BLOCKS}) after the run"}
    )
    eval_dataset: str = field(
        default="stdlib", metadata={"help": "corpus for the perplexity printed at the end"}
    )
    eval_seqlen: int | None = field(default=None, metadata={"help": "evaluation window (default: --seqlen)"})
    eval_windows: int | None = field(default=64, metadata={"help": "evaluation windows (None: all)"})
    plot: bool = field(
        default=True,
        metadata={"help": "write quantize.png (each linear's relative error) next to summary.json"},
    )


def model_folder(path: Path) -> Path:
    """The model folder a run wrote: its root (or ``model/``, where earlier versions put it)."""
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        return path / "model"
    return path


def _check_out(out: Path, config, resume: bool) -> None:
    """Refuse an output folder that would mix two runs (before anything is written)."""
    if resume:
        if not out.is_dir():
            raise UserError(f"--resume: {out} does not exist; start a run without --resume")
        check_resume(out, config)
        if (out / "config.json").is_file() and not (out / BLOCKS).is_dir():
            raise UserError(f"--resume: {out} already holds the finished model; choose a new --out")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} exists and is not empty: choose a new folder (or --resume a run)")


def quantize(config: AQLMConfig, opts: QuantizeOptions, common: CommonOptions) -> int:
    """Quantize a model into ``--out``; under ``torchrun`` the processes share the work."""
    from aqlm import distributed as dist

    device = dist.init_from_env(common.torch_device)
    try:
        return _quantize(config, opts, common, device)
    finally:
        dist.shutdown()


def _quantize(config: AQLMConfig, opts: QuantizeOptions, common: CommonOptions, device) -> int:
    import torch

    from aqlm import distributed as dist
    from aqlm.checkpoint import save_quantized
    from aqlm.quantize import check_model, model_bits, quantize_
    from papercore.io import write_json
    from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
    from papercore.llm.metrics import perplexity

    lead = dist.rank() == 0
    if not lead:  # one log and one progress bar, from rank 0
        for name in ("aqlm", "papercore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if opts.out is None and dist.enabled():
        raise UserError("--out is required when several processes share the work")
    if opts.nsamples % dist.world_size():
        raise UserError(
            f"--nsamples {opts.nsamples} cannot be split over {dist.world_size()} processes: "
            f"use a multiple of {dist.world_size()}"
        )
    out = opts.out or Path(tempfile.mkdtemp(prefix="aqlm-"))
    _check_out(out, config, opts.resume)
    dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    dtype = torch.float32 if device.type == "cpu" else common.torch_dtype
    model, tok, src = load_model(opts.model, device=device, dtype=dtype)
    check_model(model, config)  # unsupported models, group sizes, non-finite weights: before any work
    calib = get_calibration_data(
        opts.dataset,
        tok,
        opts.nsamples,
        opts.seqlen,
        seed=common.seed,
        max_chars=opts.calib_chars_per_token * opts.nsamples * opts.seqlen or None,
    )
    eval_seqlen = opts.eval_seqlen or opts.seqlen
    ppl_before = windows = None
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        write_resolved_config(out, config, opts, common=common)  # first, so --resume can check it
        workers = f" in {dist.world_size()} processes" if dist.enabled() else ""
        print(
            f"quantizing {src} with AQLM {config.scheme} on {opts.nsamples}x{opts.seqlen} tokens of "
            f"{opts.dataset}{workers}"
        )
        windows = eval_windows(get_eval_stream(opts.eval_dataset, tok), eval_seqlen, opts.eval_windows)
        ppl_before = perplexity(model, windows, device=device, progress=False)
    t0 = time.perf_counter()
    report = quantize_(
        model,
        config,
        calib,
        checkpoint_dir=out / BLOCKS,
        resume=opts.resume,
        offload=opts.offload_activations,
        device=device,
        seed=common.seed,
        progress=lead,
    )
    seconds = time.perf_counter() - t0
    if not lead:
        return 0
    save_quantized(model, out, tokenizer=tok, codebook_dtype=config.torch_codebook_dtype)
    ppl_after = perplexity(model, windows, device=device, progress=False)
    bits = model_bits(model)
    summary = {
        "model": str(src),
        "scheme": config.scheme,
        "processes": dist.world_size(),
        "calibration_sequences_per_process": report.calibration_sequences,
        "linears_per_process": [sum(r.rank == k for r in report.layers) for k in range(dist.world_size())],
        "seconds": round(seconds, 1),
        "perplexity_before": ppl_before,
        "perplexity_after": ppl_after,
        **bits,
        "eval": {"dataset": opts.eval_dataset, "seqlen": eval_seqlen, "windows": opts.eval_windows},
    }
    write_json(out / "summary.json", summary)
    if opts.plot:
        plot_quantize(report, out / "quantize.png", title=f"{src}: AQLM {config.scheme}")
    if opts.keep_blocks:
        write_json(out / BLOCKS / "report.json", report.to_dict())
    else:
        shutil.rmtree(out / BLOCKS, ignore_errors=True)
    print(f"saved the quantized model in {out} ({seconds:.1f} s)")
    print(f"perplexity {ppl_before:.2f} -> {ppl_after:.2f} ({opts.eval_dataset}, seqlen {eval_seqlen})")
    print(
        f"bits per parameter: {bits['quantized_linears_bits_per_parameter']:.3f} in quantized linears "
        f"(codebooks and scales counted as stored), {bits['model_bits_per_parameter']:.3f} for the whole model"
    )
    log.debug("per-layer report: %s", report.layers)
    return 0


def plot_quantize(report, path: Path, title: str = "") -> Path:
    """Each quantized linear's relative error ``||(W - Ŵ)X||² / ||WX||²``, in model order."""
    from papercore.plot import curves

    layers = sorted(report.layers, key=lambda r: _layer_order(r.name))
    records = [{"linear": i, "relative_mse": r.relative_mse} for i, r in enumerate(layers)]
    return curves(records, path, x="linear", title=title)


def _layer_order(name: str) -> tuple:
    """``model.layers.10.mlp.up_proj`` sorts after ``model.layers.9...``."""
    return tuple(int(p) if p.isdigit() else p for p in name.split("."))


@dataclass
class EvalOptions:
    model: Path = field(
        default=Path("."), metadata={"help": "an AQLM model folder (what `aqlm quantize --out` wrote)"}
    )
    dataset: str = field(default="stdlib", metadata={"help": "evaluation corpus name or local path"})
    seqlen: int = field(default=128, metadata={"help": "tokens per evaluation window"})
    windows: int | None = field(default=None, metadata={"help": "evaluation windows (None: the whole split)"})


def evaluate(opts: EvalOptions, common: CommonOptions) -> int:
    from aqlm.checkpoint import load_quantized
    from aqlm.quantize import model_bits
    from papercore.llm.data import load_tokenizer

    path = model_folder(opts.model)
    if not (path / "config.json").is_file():
        raise UserError(
            f"--model {opts.model}: no config.json there; pass a folder written by `aqlm quantize`"
        )
    model = load_quantized(path, device=common.torch_device)
    tok = load_tokenizer(path)
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
    """Run options of ``aqlm finetune`` (the method's options are :class:`~aqlm.DistillConfig`)."""

    quantized: Path = field(default=Path("."), metadata={"help": "folder written by `aqlm quantize`"})
    teacher: str = field(default="zoo:tiny", metadata={"help": "the original model (folder or zoo:NAME)"})
    out: Path | None = field(default=None, metadata={"help": "output folder for the fine-tuned model"})
    dataset: str = field(default="stdlib", metadata={"help": "fine-tuning corpus name or local path"})
    nsamples: int = field(default=128, metadata={"help": "fine-tuning sequences"})
    seqlen: int = field(default=128, metadata={"help": "tokens per fine-tuning sequence"})
    calib_chars_per_token: int = field(
        default=64,
        metadata={"help": "tokenize about this many characters of the corpus per needed token; 0: all"},
    )
    eval_windows: int | None = field(default=64, metadata={"help": "evaluation windows (None: all)"})
    plot: bool = field(
        default=True,
        metadata={"help": "write finetune.png (KL per step, codes changed per update) next to finetune.json"},
    )


def finetune(config: DistillConfig, opts: FinetuneOptions, common: CommonOptions) -> int:
    """End-to-end fine-tuning: distil the teacher's logits into the quantized model (KL)."""
    from aqlm.checkpoint import load_quantized, save_quantized
    from aqlm.finetune import distill_
    from papercore.io import write_json
    from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
    from papercore.llm.metrics import perplexity

    if opts.out is None:
        raise UserError("--out is required: the folder for the fine-tuned model")
    qpath = model_folder(opts.quantized)
    if not (qpath / "config.json").is_file():
        raise UserError(f"--quantized {opts.quantized}: no quantized model there (expected config.json)")
    if opts.out.exists() and any(opts.out.iterdir()):
        raise UserError(f"--out {opts.out} exists and is not empty: choose a new folder")
    device = common.torch_device
    student = load_quantized(qpath, device=device)
    teacher, tok, _ = load_model(
        opts.teacher, device=device, dtype=student.get_input_embeddings().weight.dtype
    )
    if teacher.config.vocab_size != student.config.vocab_size:
        raise UserError(
            "--teacher has another vocabulary than the quantized model: pass the model it was quantized from"
        )
    data = get_calibration_data(
        opts.dataset,
        tok,
        opts.nsamples,
        opts.seqlen,
        seed=common.seed + 1,
        max_chars=opts.calib_chars_per_token * opts.nsamples * opts.seqlen or None,
    )
    windows = eval_windows(get_eval_stream("stdlib", tok), opts.seqlen, opts.eval_windows)
    before = perplexity(student, windows, device=device, progress=False)
    res = distill_(student, teacher, data, config, seed=common.seed)
    after = perplexity(student, windows, device=device, progress=False)
    save_quantized(student, opts.out, tokenizer=tok, codebook_dtype=None)  # the dtypes it was loaded in
    write_resolved_config(opts.out, config, opts, common=common)
    write_json(
        opts.out / "finetune.json",
        {"perplexity_before": before, "perplexity_after": after, **asdict(res)},
    )
    if opts.plot:
        plot_finetune(res, opts.out / "finetune.png", title=f"end-to-end fine-tuning of {opts.quantized}")
    changed = (
        f"; codes changed per update {sum(res.code_changes) / len(res.code_changes):.2%}"
        if res.code_changes
        else ""
    )
    print(
        f"fine-tuned {res.steps} steps: KL {res.train_kl[0]:.4f} -> {res.train_kl[-1]:.4f}{changed}; "
        f"perplexity {before:.2f} -> {after:.2f}; saved {opts.out}"
    )
    return 0


def plot_finetune(res, path: Path, title: str = "") -> Path:
    """KL to the teacher at each step (validation KL per epoch when measured) and the fraction of
    code groups each code update changed."""
    from papercore.plot import curves

    records = [{"step": i + 1, "split": "train", "kl": v} for i, v in enumerate(res.train_kl)]
    if res.val_kl:
        per_epoch = res.steps // len(res.val_kl)
        records += [{"step": (e + 1) * per_epoch, "split": "val", "kl": v} for e, v in enumerate(res.val_kl)]
    if res.code_changes:
        every = res.steps // len(res.code_changes)
        records += [
            {"step": (k + 1) * every, "split": "train", "codes_changed": v}
            for k, v in enumerate(res.code_changes)
        ]
    return curves(records, path, title=title)


@dataclass
class BenchOptions:
    scheme: str = field(default="2x8g8", metadata={"help": "the layer's scheme, MxBgG (e.g. 1x16g8)"})
    shape: tuple[int, ...] = field(default=(4096, 4096), metadata={"help": "in_features out_features"})
    tokens: int = field(default=1, metadata={"help": "tokens per matrix product"})
    repeats: int = field(default=50, metadata={"help": "timed repetitions (the median is printed)"})


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
        opts = QuantizeOptions(out=Path(tmp) / "run", nsamples=32, plot=False)
        return quantize(AQLMConfig(max_epochs=20), opts, common)


SCHEME = Preset(
    "scheme",
    scheme_values,
    help="MxBgG: M codebooks of 2^B entries over groups of G weights; presets "
    + ", ".join(SCHEMES)
    + ", or any such name (sets num_codebooks, nbits_per_codebook, in_group_size)",
    default="2x8g8",
)

app = CLI(
    "aqlm",
    "AQLM: Additive Quantization of Language Models (quantize, eval, finetune, bench, demo).",
    [
        Command(
            "quantize",
            quantize,
            "quantize a model (default: the zoo tiny model at 2x8g8); several processes under torchrun",
            config=AQLMConfig,
            options=QuantizeOptions,
            preset=SCHEME,
        ),
        Command("eval", evaluate, "perplexity and exact bits of a quantized model", options=EvalOptions),
        Command(
            "finetune",
            finetune,
            "end-to-end fine-tuning by distillation from the original model",
            config=DistillConfig,
            options=FinetuneOptions,
        ),
        Command(
            "bench",
            bench,
            "time the AQLM kernels against dense F.linear on this device",
            options=BenchOptions,
        ),
        Command("demo", demo, "quantize the built-in tiny model and print perplexity and bits"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
