"""Quantize a transformers decoder block by block with the SpQR engine (:func:`quantize_`).

With ``store=True`` (the default) every decoder linear is swapped for a
:class:`~spqr.quantized_linear.QuantizedLinear` (packed codes, bilevel statistics, CSR outliers);
with ``store=False`` only its weight is overwritten by the dequantized SpQR weight (the simulated
model of the authors' ``main.py``). Both compute the same function. With a checkpoint folder each
finished block is saved atomically and an interrupted run resumes after the last finished block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from papercore.llm.calib import BlockCheckpoints, BlockContext, CalibConfig, run_calibration
from papercore.llm.hf_compat import decoder_layers
from spqr.config import FP16_STATS, SpQRConfig
from spqr.engine import quantize_weight
from spqr.quantized_linear import QuantizedLinear

log = logging.getLogger(__name__)


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int]
    relative_loss: float | None
    outlier_share: float
    bits_per_parameter: float


@dataclass
class QuantizationReport:
    layers: list[LayerReport] = field(default_factory=list)
    resumed_blocks: list[int] = field(default_factory=list)

    @property
    def bits_per_parameter(self) -> float:
        """Average over all quantized weights (outliers included)."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        return sum(r.bits_per_parameter * r.shape[0] * r.shape[1] for r in self.layers) / total

    @property
    def outlier_share(self) -> float:
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        return sum(r.outlier_share * r.shape[0] * r.shape[1] for r in self.layers) / total


def check_model(model: nn.Module, config: SpQRConfig) -> list[tuple[str, nn.Linear]]:
    """The decoder linears to quantize; a clear error naming the layer before any work."""
    todo = []
    uses_qq = config.qq_scale_bits < FP16_STATS or (config.qq_zero_bits < FP16_STATS and not config.sym)
    for i, block in enumerate(decoder_layers(model)):
        for name, module in block.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            full = f"model.layers.{i}.{name}"
            if module.in_features % config.groupsize:
                raise ValueError(
                    f"{full}: groupsize {config.groupsize} does not divide its input width {module.in_features}"
                )
            if uses_qq and module.out_features % config.qq_groupsize:
                raise ValueError(
                    f"{full}: qq_groupsize {config.qq_groupsize} does not divide its output width "
                    f"{module.out_features} (or use 16-bit statistics)"
                )
            if not torch.isfinite(module.weight).all():
                raise ValueError(f"{full}: the weight has non-finite values (NaN or inf)")
            todo.append((full, module))
    if not todo:
        raise ValueError("no linear layer to quantize in model.model.layers")
    return todo


@torch.no_grad()
def quantize_(
    model: nn.Module,
    config: SpQRConfig,
    calibration: torch.Tensor,
    *,
    store: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    device=None,
    offload: bool = False,
    progress: bool = True,
) -> QuantizationReport:
    """Quantize every decoder linear of ``model`` in place with SpQR (or GPTQ/RTN).

    Parameters
    ----------
    calibration : LongTensor ``[nsamples, seqlen]`` token windows (at least one).
    store : swap each linear for a :class:`QuantizedLinear` (True) or only write back its
        dequantized weight (False).
    checkpoint_dir : each finished block is saved there (``block_<i>.safetensors``, atomically,
        with ``spqr_config.json``); needs ``store``.
    resume : load the finished blocks from ``checkpoint_dir`` instead of quantizing them again.
    """
    if calibration.dim() != 2:
        raise ValueError(
            f"calibration must be [nsamples, seqlen] token ids, got shape {tuple(calibration.shape)}"
        )
    if calibration.shape[0] < 1 or calibration.shape[1] < 1:
        raise ValueError(f"too few calibration sequences: got shape {tuple(calibration.shape)}, need >= 1")
    if checkpoint_dir is not None and not store:
        raise ValueError("checkpoint_dir needs store=True (blocks are saved as QuantizedLinear layers)")
    check_model(model, config)
    report = QuantizationReport()
    layers = decoder_layers(model)
    todo = list(range(len(layers)))
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = BlockCheckpoints(
            checkpoint_dir, config.to_dict(), resume=resume, config_name="spqr_config.json"
        )
        if resume:
            for i in list(todo):
                if ckpt.done(i):
                    load_block(ckpt, layers[i], i, config)
                    todo.remove(i)
                    report.resumed_blocks.append(i)
            if report.resumed_blocks:
                log.info("resuming: blocks %s loaded from %s", report.resumed_blocks, ckpt.folder)

    def callback(ctx: BlockContext) -> None:
        for name, linear in list(ctx.linears.items()):
            full = f"model.layers.{ctx.index}.{name}"
            try:
                res = quantize_weight(linear.weight.detach().float(), ctx.xtx[name], config)
            except ValueError as e:
                raise ValueError(f"{full}: {e}") from e
            if store:
                bias = None if linear.bias is None else linear.bias.detach()
                q = QuantizedLinear.from_result(res, bias, dtype=linear.weight.dtype)
                q.requires_grad_(False)
                ctx.block.set_submodule(name, q)
            else:
                linear.weight.copy_(res.weight.to(linear.weight.dtype))
            report.layers.append(
                LayerReport(
                    full,
                    tuple(linear.weight.shape),
                    res.relative_loss,
                    float(res.outlier_share),
                    float(res.bits_per_parameter),
                )
            )
        if ckpt is not None:
            ckpt.save(ctx.block, ctx.index)

    if todo:
        run_calibration(
            model,
            calibration,
            callback,
            CalibConfig(device=device, offload=offload, progress=progress),
            layer_indices=todo,
        )
    return report


# ------------------------------------------------------------------ per-block checkpoints
def load_block(ckpts: BlockCheckpoints, block: nn.Module, i: int, config: SpQRConfig) -> None:
    """Swap the block's linears for QuantizedLinear layers shaped by the saved block, and load it."""

    def make_layer(name, module, state):
        if f"{name}.codes" not in state:
            return None
        return QuantizedLinear.from_config(
            config,
            module.in_features,
            module.out_features,
            nnz=state[f"{name}.outlier_values"].shape[0],
            bias=module.bias is not None,
            device=module.weight.device,
            dtype=module.weight.dtype,
        )

    ckpts.load(block, i, make_layer)
    for m in block.modules():
        if isinstance(m, QuantizedLinear):
            m.to_kernel_layout_()


def model_bits(model: nn.Module) -> dict[str, float]:
    """Stored bits per parameter of the QuantizedLinear layers (everything but the bias), the paper's
    formula for them, their outlier share, and the whole model with every other tensor at its width."""
    q_bits = f_bits = q_params = nnz = other_bits = other_params = 0.0
    seen = set()
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            n = module.in_features * module.out_features
            q_bits += module.stored_bits
            f_bits += module.formula_bits_per_parameter * n
            q_params += n
            nnz += module.nnz
    for p in model.parameters():  # deduplicated (tied embeddings count once); biases included
        if id(p) not in seen:
            seen.add(id(p))
            other_bits += p.numel() * p.element_size() * 8
            other_params += p.numel()
    return {
        "quantized_linears_bits_per_parameter": q_bits / q_params if q_params else float("nan"),
        "formula_bits_per_parameter": f_bits / q_params if q_params else float("nan"),
        "outlier_share": nnz / q_params if q_params else 0.0,
        "quantized_parameters": int(q_params),
        "model_bits_per_parameter": (q_bits + other_bits) / (q_params + other_params),
        "total_parameters": int(q_params + other_params),
    }
