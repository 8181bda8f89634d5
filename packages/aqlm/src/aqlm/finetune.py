"""Fine-tuning of quantized models: per block (against the original block's outputs) and end to end
(distillation of the whole model against the original model's logits).

Codes are discrete and stay frozen in the gradient steps; what trains is every floating-point
parameter the quantized model keeps: codebooks, scales, norm weights, biases, and for the
end-to-end stage also the unquantized layers (embeddings, head).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from aqlm.quantized_linear import QuantizedLinear

log = logging.getLogger(__name__)


@dataclass
class BlockFinetuneResult:
    epochs: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    initial_val_loss: float = float("nan")


def _trainable_block_params(block: nn.Module) -> list[nn.Parameter]:
    """Codebooks, scales, biases and norm weights: every float parameter of a block once its linears are quantized."""
    return [
        p
        for module in block.modules()
        if not isinstance(module, nn.Linear)  # an unquantized dense linear stays as it is
        for p in module.parameters(recurse=False)
        if p.is_floating_point()
    ]


def finetune_block(
    block: nn.Module,
    run_block,
    inputs: list[torch.Tensor],
    targets: list[torch.Tensor],
    *,
    max_epochs: int,
    lr: float = 1e-5,
    val_size: int = 0,
    relative_tolerance: float = 1e-3,
    early_stop: int = 3,
    keep_best: bool = True,
    device: torch.device | None = None,
) -> BlockFinetuneResult:
    """Train ``block``'s codebooks, scales and norms so its outputs match ``targets`` (MSE).

    ``run_block(hidden, batch_index)`` runs the block on batch ``batch_index``'s inputs. The last
    ``val_size`` batches are held out; training stops when the held-out loss has not improved by
    ``relative_tolerance`` for ``early_stop`` epochs, and the best state is kept.
    """
    n = len(inputs)
    if val_size >= n:
        raise ValueError(
            f"val_size ({val_size}) must be smaller than the number of calibration batches ({n})"
        )
    train_idx, val_idx = list(range(n - val_size)), list(range(n - val_size, n))
    params = _trainable_block_params(block)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)

    def loss_of(b):
        out = run_block(inputs[b], b)
        ref = targets[b].to(out.device, out.dtype)
        return (out - ref).float().pow(2).mean() / ref.float().pow(2).mean().clamp_min(1e-12)

    def evaluate(idx):
        with torch.no_grad():
            return sum(loss_of(b).item() for b in idx) / max(len(idx), 1)

    result = BlockFinetuneResult(0)
    watch = val_idx or train_idx
    best = result.initial_val_loss = evaluate(watch)
    best_state = [p.detach().clone() for p in params] if keep_best else None
    stale = 0
    for epoch in range(max_epochs):
        total = 0.0
        for b in torch.randperm(len(train_idx), generator=gen).tolist():
            with torch.enable_grad():
                loss = loss_of(train_idx[b])
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += loss.item()
        result.train_loss.append(total / len(train_idx))
        current = evaluate(watch)
        result.val_loss.append(current)
        result.epochs = epoch + 1
        if not math.isfinite(current):
            log.warning("block fine-tuning diverged (loss %s); keeping the best state", current)
            break
        if current < best * (1 - relative_tolerance):
            best, stale = current, 0
            if keep_best:
                best_state = [p.detach().clone() for p in params]
        else:
            stale += 1
            if stale >= early_stop:
                break
    if keep_best and best_state is not None:
        with torch.no_grad():
            for p, v in zip(params, best_state):
                p.copy_(v)
    for p in params:
        p.requires_grad_(False)
    return result


def quantized_layers(model: nn.Module) -> dict[str, QuantizedLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
