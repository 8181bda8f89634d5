"""Quantize a transformers decoder with AQLM, block by block (:func:`quantize_`).

For each decoder block (through :func:`papercore.llm.calib.run_calibration`): accumulate every
linear's :math:`X^\\top X` over the calibration sequences, quantize each linear with the AQ
engine (:func:`aqlm.engine.quantize_weight`), swap it for a :class:`~aqlm.QuantizedLinear`,
optionally fine-tune the block's codebooks, scales and norms against the original block's
outputs, save the block (atomically) and feed the quantized block's outputs to the next block.
With a checkpoint folder, an interrupted run resumes after the last finished block.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from aqlm import distributed as dist
from aqlm.config import AQLMConfig, bits_per_parameter
from aqlm.finetune import finetune_block
from aqlm.quantized_linear import QuantizedLinear
from papercore.io import write_json
from papercore.llm.calib import BlockCheckpoints, BlockContext, CalibConfig, run_calibration
from papercore.llm.hf_compat import decoder_layers

log = logging.getLogger(__name__)


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int]
    relative_mse: float
    epochs: int
    seconds: float
    bits_per_parameter: float
    rank: int = 0  # the process that quantized it


@dataclass
class QuantizationReport:
    config: dict
    layers: list[LayerReport] = field(default_factory=list)
    block_finetune: dict[int, dict] = field(default_factory=dict)
    resumed_blocks: list[int] = field(default_factory=list)
    calibration_sequences: int = 0  # processed by this process (its shard in a distributed run)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def check_model(model: nn.Module, config: AQLMConfig) -> list[tuple[str, nn.Linear]]:
    """Linears that will be quantized; a clear error before any work for anything unsupported."""
    layers = decoder_layers(model)
    todo = []
    for i, block in enumerate(layers):
        for name, module in block.named_modules():
            if not isinstance(module, nn.Linear) or name.rsplit(".", 1)[-1] in config.skip:
                continue
            full = f"model.layers.{i}.{name}"
            if module.in_features % config.in_group_size:
                raise ValueError(
                    f"{full}: in_group_size {config.in_group_size} does not divide its input width "
                    f"{module.in_features}"
                )
            if module.out_features % config.out_group_size:
                raise ValueError(
                    f"{full}: out_group_size {config.out_group_size} does not divide its output width "
                    f"{module.out_features}"
                )
            if not torch.isfinite(module.weight).all():
                raise ValueError(f"{full}: the weight has non-finite values (NaN or inf)")
            todo.append((full, module))
    if not todo:
        raise ValueError("no linear layer to quantize in model.model.layers")
    return todo


def quantize_(
    model: nn.Module,
    config: AQLMConfig,
    calibration: torch.Tensor,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    offload: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
) -> QuantizationReport:
    """Quantize every linear of ``model``'s decoder blocks in place.

    Parameters
    ----------
    model : transformers causal LM with ``model.model.layers``
    config : AQLMConfig
    calibration : LongTensor ``[nsamples, seqlen]``
        Calibration token windows (e.g. :func:`papercore.llm.data.get_calibration_data`).
    checkpoint_dir : path, optional
        Each finished block is saved there (``block_<i>.safetensors``, atomically).
    resume : bool
        Load finished blocks from ``checkpoint_dir`` instead of quantizing them again.
    offload : bool
        Keep block activations on the CPU between blocks.
    device : device, optional
        Where blocks are processed (default: the model's device).
    """
    if calibration.dim() != 2:
        raise ValueError(
            f"calibration must be [nsamples, seqlen] token ids, got shape {tuple(calibration.shape)}"
        )
    needed = 1 + config.val_size
    if calibration.shape[0] < needed:
        raise ValueError(
            f"{calibration.shape[0]} calibration sequences are too few: need at least {needed} "
            f"(val_size={config.val_size} are held out for fine-tuning)"
        )
    check_model(model, config)
    local = dist.shard(calibration)  # this process's share of the sequences (all of them when alone)
    local_index = dist.shard_indices(calibration.shape[0])
    storage = config.torch_codebook_dtype
    t0 = time.perf_counter()
    report = QuantizationReport(config.to_dict(), calibration_sequences=local.shape[0])
    layers = decoder_layers(model)
    todo = list(range(len(layers)))
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = BlockCheckpoints(
            checkpoint_dir,
            config.to_dict(),
            resume=resume,
            config_name="aqlm_config.json",
            write=dist.rank() == 0,
        )
        dist.barrier()  # every rank has checked the folder before anyone goes on
        if resume:
            for i in list(todo):
                if ckpt.done(i):
                    load_block(ckpt, layers[i], i, config)
                    todo.remove(i)
                    report.resumed_blocks.append(i)
            if report.resumed_blocks:
                log.info("resuming: blocks %s loaded from %s", report.resumed_blocks, ckpt.folder)

    def callback(ctx: BlockContext) -> None:
        names = [n for n in ctx.linears if n.rsplit(".", 1)[-1] not in config.skip]
        for k, name in enumerate(names):
            _quantize_linear(ctx, name, ctx.linears[name], config, seed, report, owner=dist.owner(k))
        if _block_done(ctx.block, config):
            if config.finetune_max_epochs > 0:
                res = finetune_block(
                    ctx.block,
                    lambda h, b: ctx.run_block(h, b),
                    ctx.inputs.hidden,
                    ctx.reference_outputs,
                    max_epochs=config.finetune_max_epochs,
                    lr=config.finetune_lr,
                    batch_size=config.finetune_batch_size,
                    val_size=config.val_size,
                    relative_tolerance=config.finetune_relative_tolerance,
                    early_stop=config.finetune_early_stop,
                    keep_best=config.finetune_keep_best,
                    index=local_index,
                    num_items=calibration.shape[0],
                    sum_gradients=dist.sum_gradients_,
                    sum_losses=dist.total,
                    seed=seed,
                )
                report.block_finetune[ctx.index] = asdict(res)
                log.info(
                    "block %d fine-tuned: %s epochs, loss %.4g -> %.4g",
                    ctx.index,
                    res.epochs,
                    res.initial_val_loss,
                    min(res.val_loss, default=res.initial_val_loss),
                )
            # Round codebooks and scales to the stored dtype now, so the next blocks calibrate on the
            # outputs of the block as it will be saved (held in the block's dtype until the end).
            _round_to_storage_(ctx.block, storage)
            if ckpt is not None:
                if dist.rank() == 0:
                    save_block(ckpt, ctx.block, ctx.index)
                dist.barrier()

    if todo:
        run_calibration(
            model,
            local,
            callback,
            CalibConfig(
                offload=offload,
                device=device,
                dtype=_dense_dtype(model),  # blocks keep the model's dtype (not their first tensor's)
                true_sequential=config.true_sequential,
                progress=progress,
            ),
            layer_indices=todo,
        )
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            module.store_as_(storage)
    report.seconds = time.perf_counter() - t0
    if ckpt is not None and dist.rank() == 0:
        write_json(ckpt.folder / "report.json", report.to_dict())
    return report


def _dense_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's unquantized weights (its embeddings)."""
    return model.get_input_embeddings().weight.dtype


@torch.no_grad()
def _round_to_storage_(block: nn.Module, storage: torch.dtype) -> None:
    """Round the block's codebooks and scales to ``storage`` values, keeping their dtype for now."""
    for module in block.modules():
        if isinstance(module, QuantizedLinear):
            for p in (module.codebooks, module.scales):
                p.copy_(p.to(storage))


def _block_done(block: nn.Module, config: AQLMConfig) -> bool:
    """True once every linear of the block that should be quantized is (the last true-sequential group)."""
    return not any(
        isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] not in config.skip for n, m in block.named_modules()
    )


def _quantize_linear(
    ctx: BlockContext,
    name: str,
    linear: nn.Linear,
    config: AQLMConfig,
    seed: int,
    report: QuantizationReport,
    owner: int = 0,
) -> None:
    """Quantize one linear on rank ``owner`` (with the all-reduced XᵀX) and swap it for a QuantizedLinear everywhere."""
    from aqlm.engine import quantize_weight

    full = f"model.layers.{ctx.index}.{name}"
    t0 = time.perf_counter()
    xtx = dist.global_mean_xtx(ctx.xtx[name], ctx.num_tokens[name])
    dev = linear.weight.device
    o, i = linear.out_features // config.out_group_size, linear.in_features // config.in_group_size
    codes = torch.empty(o, i, config.num_codebooks, dtype=torch.int64, device=dev)
    codebooks = torch.empty(
        config.num_codebooks,
        2**config.nbits_per_codebook,
        config.out_group_size,
        config.in_group_size,
        dtype=torch.float32,
        device=dev,
    )
    scales = torch.empty(o, 1, 1, 1, dtype=torch.float32, device=dev)
    stats = torch.zeros(2, dtype=torch.float64, device=dev)  # relative MSE, epochs
    if dist.rank() == owner:
        try:
            with torch.enable_grad():  # the calibration engine runs blocks under no_grad; AQ uses Adam
                res = quantize_weight(linear.weight.detach(), xtx, config, seed=seed)
        except ValueError as e:
            raise ValueError(f"{full}: {e}") from e
        codes.copy_(res.codes)
        codebooks.copy_(res.codebooks)
        scales.copy_(res.scales.reshape(o, 1, 1, 1))
        stats[0], stats[1] = float(res.relative_mse), float(res.epochs)
    dist.broadcast_([codes, codebooks, scales, stats], owner)
    dtype = linear.weight.dtype
    q = QuantizedLinear.from_parts(
        codes, codebooks.to(dtype), scales.to(dtype), None if linear.bias is None else linear.bias.detach()
    )
    q.requires_grad_(False)
    ctx.block.set_submodule(name, q)
    seconds = time.perf_counter() - t0
    report.layers.append(
        LayerReport(
            full,
            (linear.out_features, linear.in_features),
            stats[0].item(),
            int(stats[1].item()),
            seconds,
            bits_per_parameter(  # as it will be stored
                linear.out_features,
                linear.in_features,
                config.num_codebooks,
                config.nbits_per_codebook,
                config.in_group_size,
                config.out_group_size,
                code_bits=q.codes.element_size() * 8,
                codebook_bits=torch.finfo(config.torch_codebook_dtype).bits,
                scale_bits=torch.finfo(config.torch_codebook_dtype).bits,
            ),
            owner,
        )
    )
    log.info(
        "%s: relative MSE %.4g after %d epochs (%.1f s)", full, stats[0].item(), int(stats[1].item()), seconds
    )


# ------------------------------------------------------------------ per-block checkpoints
def save_block(ckpts: BlockCheckpoints, block: nn.Module, i: int) -> None:
    ckpts.save(block, i)


def load_block(ckpts: BlockCheckpoints, block: nn.Module, i: int, config: AQLMConfig) -> None:
    """Swap the block's linears for QuantizedLinear layers and load a saved block into it."""

    def make_layer(name, module, state):
        if f"{name}.codes" not in state:
            return None
        return QuantizedLinear(
            module.in_features,
            module.out_features,
            config.in_group_size,
            config.out_group_size,
            config.num_codebooks,
            config.nbits_per_codebook,
            bias=module.bias is not None,
            device=module.weight.device,
            dtype=module.weight.dtype,  # saved values are those of the storage dtype already
        )

    ckpts.load(block, i, make_layer)


def model_bits(model: nn.Module) -> dict[str, float]:
    """Bits per parameter of the quantized linears (codebooks and scales included), and of the whole model
    with every other parameter at its stored width."""
    q_bits = q_params = other_bits = other_params = 0.0
    seen = set()
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            n = module.in_features * module.out_features
            q_bits += module.bits_per_parameter * n
            q_params += n
            if module.bias is not None:
                other_bits += module.bias.numel() * module.bias.element_size() * 8
                other_params += module.bias.numel()
            seen.update(id(p) for p in module.parameters())
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        other_bits += p.numel() * p.element_size() * 8
        other_params += p.numel()
    return {
        "quantized_linears_bits_per_parameter": q_bits / q_params if q_params else math.nan,
        "quantized_parameters": int(q_params),
        "model_bits_per_parameter": (q_bits + other_bits) / (q_params + other_params),
        "total_parameters": int(q_params + other_params),
    }


@torch.no_grad()
def random_quantize_(
    model: nn.Module, config: AQLMConfig, *, seed: int = 0, skip: tuple[str, ...] = ("lm_head",)
):
    """Swap every ``nn.Linear`` (but ``skip``) for a QuantizedLinear with random codes, codebooks and scales.

    For format tests and speed benchmarks (e.g. decoding with a Llama-2-7B-shaped model), where what
    the weights are does not matter. Codebooks are scaled so outputs keep a sensible magnitude.
    """
    gen = torch.Generator().manual_seed(seed)
    m, b, g, og = config.num_codebooks, config.nbits_per_codebook, config.in_group_size, config.out_group_size
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, nn.Linear) or name.rsplit(".", 1)[-1] in skip or name in skip:
            continue
        o, i = mod.out_features, mod.in_features
        dev, dtype = mod.weight.device, mod.weight.dtype
        codes = torch.randint(0, 2**b, (o // og, i // g, m), generator=gen).to(dev)
        codebooks = (torch.randn(m, 2**b, og, g, generator=gen) / (m * i) ** 0.5).to(dev, dtype)
        scales = torch.ones(o // og, 1, 1, 1, device=dev, dtype=dtype)
        q = QuantizedLinear.from_parts(
            codes, codebooks, scales, None if mod.bias is None else mod.bias.detach()
        )
        q.requires_grad_(False)
        model.set_submodule(name, q)
    return model
