"""Fine-tuning of quantized models: per block (against the original block's outputs) and end to end
(distillation of the whole model against the original model's logits).

Codes are discrete and stay frozen in the gradient steps; what trains is every floating-point
parameter the quantized model keeps: codebooks, scales, norm weights, biases, and for the
end-to-end stage also the unquantized layers (embeddings, head).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from aqlm.kernels.reference import dequantize, signed_codes
from aqlm.quantized_linear import QuantizedLinear

log = logging.getLogger(__name__)


@dataclass
class BlockFinetuneResult:
    epochs: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    initial_val_loss: float = float("nan")


class MasterAdam:
    """Adam whose half-precision parameters are stepped through float32 master copies.

    Adam steps of lr ~1e-5 are far below bf16/fp16 resolution and would round away if applied to
    the parameters directly; float32 parameters are stepped in place as usual.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, betas: tuple[float, float]):
        self.params = params
        self.masters = [
            p if p.dtype == torch.float32 else p.detach().float().requires_grad_(True) for p in params
        ]
        self.opt = torch.optim.Adam(self.masters, lr=lr, betas=betas)

    def step(self) -> None:
        for p, m in zip(self.params, self.masters):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, m in zip(self.params, self.masters):
                if m is not p:
                    p.copy_(m)
                    p.grad = None


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
    sync_gradients: Callable[[list[nn.Parameter]], None] | None = None,
    reduce_loss: Callable[[float], float] | None = None,
) -> BlockFinetuneResult:
    """Train ``block``'s codebooks, scales and norms so its outputs match ``targets`` (MSE).

    ``run_block(hidden, batch_index)`` runs the block on batch ``batch_index``'s inputs. The last
    ``val_size`` batches are held out; training stops when the held-out loss has not improved by
    ``relative_tolerance`` for ``early_stop`` epochs, and the best state is kept. In a distributed
    run, ``sync_gradients`` averages gradients and ``reduce_loss`` averages losses across processes
    (so every process takes the same steps and the same stopping decision).
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
    opt = MasterAdam(params, lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)

    def loss_of(b):
        out = run_block(inputs[b], b)
        ref = targets[b].to(out.device, out.dtype)
        return (out - ref).float().pow(2).mean() / ref.float().pow(2).mean().clamp_min(1e-12)

    def evaluate(idx):
        with torch.no_grad():
            value = sum(loss_of(b).item() for b in idx) / max(len(idx), 1)
        return reduce_loss(value) if reduce_loss else value

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
            if sync_gradients:
                sync_gradients(params)
            opt.step()
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


@dataclass
class DistillResult:
    steps: int = 0
    train_kl: list[float] = field(default_factory=list)
    val_kl: list[float] = field(default_factory=list)
    code_changes: list[float] = field(default_factory=list)  # fraction of codes changed at each code update


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of :math:`\\mathrm{KL}(p_{teacher} \\| p_{student})`, computed in float32."""
    t = torch.log_softmax(teacher_logits.float(), dim=-1)
    s = torch.log_softmax(student_logits.float(), dim=-1)
    return (t.exp() * (t - s)).sum(-1).mean()


def distill_(
    student: nn.Module,
    teacher: nn.Module,
    data: torch.Tensor,
    *,
    epochs: int = 1,
    lr: float = 3e-4,
    batch_size: int = 4,
    train_nonquantized: bool = True,
    val_data: torch.Tensor | None = None,
    code_update_every: int = 0,
    max_code_change: float = 0.01,
    code_lr: float = 0.1,
    progress: bool = True,
    seed: int = 0,
) -> DistillResult:
    """End-to-end fine-tuning: distil ``teacher``'s next-token distributions into the quantized ``student``.

    Trains codebooks, scales and (``train_nonquantized``) every other float parameter of the student
    (norms, embeddings, head) with Adam on the per-token KL divergence to the teacher's logits.
    With ``code_update_every = k > 0``, every ``k`` steps each quantized layer takes a discrete step
    (:func:`update_codes`): the dense weight moved by ``code_lr`` (relative to its RMS) along its
    normalised straight-through gradient is re-encoded (:func:`encode_groups`), and at most ``max_code_change`` of the code groups may change.
    """
    from papercore.runtime import progress as progress_bar

    device = next(student.parameters()).device
    layers = quantized_layers(student)
    if not layers:
        raise ValueError("the student has no QuantizedLinear layers: quantize it first")
    q_params = {id(p) for m in layers.values() for p in (m.codebooks, m.scales)}
    params = [m.codebooks for m in layers.values()] + [m.scales for m in layers.values()]
    if train_nonquantized:
        params += [p for p in student.parameters() if p.is_floating_point() and id(p) not in q_params]
    teacher.eval().requires_grad_(False)
    student.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = MasterAdam(params, lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    result = DistillResult()
    dense_grads: dict[str, torch.Tensor] = {}
    hooks = []
    if code_update_every:
        hooks = [_track_weight_grad(name, m, dense_grads) for name, m in layers.items()]
    try:
        student.train()
        for _ in range(epochs):
            order = torch.randperm(data.shape[0], generator=gen)
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            for idx in progress_bar(batches, desc="distill") if progress else batches:
                ids = data[idx].to(device)
                with torch.no_grad():
                    target = teacher(input_ids=ids, use_cache=False).logits
                with torch.enable_grad():
                    loss = kl_to_teacher(student(input_ids=ids, use_cache=False).logits, target)
                    loss.backward()
                opt.step()
                result.steps += 1
                result.train_kl.append(loss.item())
                if code_update_every and result.steps % code_update_every == 0:
                    changed = [
                        update_codes(m, dense_grads.pop(n, None), code_lr, max_code_change)
                        for n, m in layers.items()
                    ]
                    result.code_changes.append(sum(changed) / len(changed))
            if val_data is not None:
                result.val_kl.append(evaluate_kl(student, teacher, val_data, batch_size))
    finally:
        for h in hooks:
            h.remove()
        student.eval()
        student.requires_grad_(False)
    return result


@torch.no_grad()
def evaluate_kl(student: nn.Module, teacher: nn.Module, data: torch.Tensor, batch_size: int = 4) -> float:
    device = next(student.parameters()).device
    total = 0.0
    for i in range(0, data.shape[0], batch_size):
        ids = data[i : i + batch_size].to(device)
        total += kl_to_teacher(student(input_ids=ids).logits, teacher(input_ids=ids).logits).item() * len(ids)
    return total / data.shape[0]


def _track_weight_grad(name: str, layer: QuantizedLinear, store: dict[str, torch.Tensor]):
    """Accumulate dL/dW (the gradient of the dequantized weight) for the next code update."""

    def hook(module, args, output):
        x = args[0].detach()

        def on_grad(grad_out):
            g = grad_out.reshape(-1, grad_out.shape[-1]).float().T @ x.reshape(-1, x.shape[-1]).float()
            store[name] = store[name] + g if name in store else g

        if output.requires_grad:
            output.register_hook(on_grad)

    return layer.register_forward_hook(hook)


@torch.no_grad()
def encode_groups(
    target: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    codes: torch.Tensor,
    rounds: int = 1,
    chunk: int = 4096,
) -> torch.Tensor:
    """Codes that fit ``target`` (``[out, in]``) in plain L2 with fixed codebooks and scales.

    With an identity objective the groups are independent, so each is re-encoded by coordinate
    descent over its ``M`` codes (starting from ``codes``; each step keeps the current code when
    nothing is better, so the error never increases). Memory is bounded by ``chunk`` groups at a time.
    """
    num_cb, size, og, g = codebooks.shape
    o, i, _ = codes.shape
    t = (
        (target / scales.view(-1, 1).repeat_interleave(og, 0))
        .view(o, og, i, g)
        .permute(0, 2, 1, 3)
        .reshape(o * i, og * g)
    )
    flat_cb = codebooks.reshape(num_cb, size, og * g)
    cb_sq = flat_cb.pow(2).sum(-1)  # [M, 2^B]
    new = codes.reshape(o * i, num_cb).clone()
    for _ in range(rounds):
        for m in range(num_cb):
            for s0 in range(0, o * i, chunk):
                sl = slice(s0, s0 + chunk)
                others = sum(flat_cb[k][new[sl, k]] for k in range(num_cb) if k != m)
                resid = t[sl] - others if num_cb > 1 else t[sl]
                dist = cb_sq[m][None, :] - 2 * resid @ flat_cb[m].T  # ||r - c||^2 - ||r||^2
                new[sl, m] = dist.argmin(dim=1)
    return new.view(o, i, num_cb)


def _group_errors(layer: QuantizedLinear, codes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error to ``target`` of every (output group, input group) block, ``[O, I]``."""
    og, g = layer.out_group_size, layer.in_group_size
    rec = dequantize(codes, layer.codebooks.float(), layer.scales.float())
    diff = (rec - target).view(rec.shape[0] // og, og, rec.shape[1] // g, g)
    return diff.pow(2).sum(dim=(1, 3))


@torch.no_grad()
def update_codes(
    layer: QuantizedLinear, weight_grad: torch.Tensor | None, code_lr: float, max_change: float
) -> float:
    r"""One discrete step on the codes of ``layer``.

    The dense weight takes a normalised gradient step, :math:`W' = W - \eta\,\mathrm{rms}(W)\,G/\mathrm{rms}(G)`
    (``code_lr`` = :math:`\eta`, a step relative to the weight's scale, like an RMS-normalised
    optimiser step), :math:`W'` is re-encoded with the layer's codebooks and scales, and at most a
    ``max_change`` fraction of the code groups take their new codes (those whose error to :math:`W'`
    improves most). Returns the fraction of code groups changed.
    """
    if weight_grad is None or max_change <= 0:
        return 0.0
    w = layer.dequantize().float()
    g = weight_grad.to(w.device, torch.float32)
    target = w - code_lr * w.pow(2).mean().sqrt() * g / g.pow(2).mean().sqrt().clamp_min(1e-30)
    codes = layer.unsigned_codes()
    proposal = encode_groups(target, layer.codebooks.float(), layer.scales.float(), codes)
    gain = _group_errors(layer, codes, target) - _group_errors(layer, proposal, target)
    candidates = (proposal != codes).any(-1) & (gain > 0)
    budget = int(max_change * candidates.numel())
    if int(candidates.sum()) > budget:
        keep = torch.zeros_like(candidates).flatten()
        if budget:
            keep[torch.topk(torch.where(candidates, gain, -torch.inf).flatten(), budget).indices] = True
        candidates = keep.view_as(candidates)
    codes[candidates] = proposal[candidates]
    layer.codes.copy_(signed_codes(codes, layer.nbits_per_codebook))
    return candidates.float().mean().item()
